"""Shared helpers for the evaluation tests: a routing project with a holdout, a teacher run and a trained student."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from sqlmodel import Session
from teacher_helpers import LABELS, make_dataset

from core.access import projects
from core.data import holdout
from core.gate import gate
from core.store import jobs
from core.store.models import Project, TeacherRun, TrainingRun, User
from core.teacher import runs as teacher_runs
from core.training import runs as training_runs

FAST = {"family": "ngram", "size": "tiny", "epochs": 40, "patience": 5, "lr": 0.05}
KEYWORDS = {"billing": ["invoice", "refund", "charge", "payment", "billed"],
            "technical": ["crash", "error", "bug", "freezes", "timeout"],
            "account": ["password", "login", "email", "profile", "username"]}
FILLER = ("please help me with my the this today again since yesterday urgent issue hello thanks customer order "
          "app phone it not working team support question need box parcel monday friday soon still").split()


def ticket_rows(n: int = 240) -> pd.DataFrame:
    """Distinct tickets: one keyword of the label among random filler words; every other row has a reference."""
    rng = random.Random(7)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        words = rng.sample(FILLER, 4) + [rng.choice(KEYWORDS[label])]
        rng.shuffle(words)
        rows.append({"id": f"T{i:04d}", "text": " ".join(words), "reference": label if i % 2 else None,
                     "queue": label})
    return pd.DataFrame(rows)


def teacher_run_with_holdout(session: Session, *, actor: User, project: Project, tmp_path: Path) -> TeacherRun:
    """Imported rows, a 20 % holdout stratified by queue, and an imported teacher that is always right."""
    df = ticket_rows()
    dataset = make_dataset(session, actor=actor, project=project, df=df)
    holdout.fix_holdout(session, actor=actor, project=project, dataset_id=dataset.id, fraction=0.2,
                        stratify_by=["queue"])
    outputs = pd.DataFrame({"id": df["id"], "label": df["queue"],
                            **{f"prob_{label}": (df["queue"] == label).map({True: 0.9, False: 0.05})
                               for label in LABELS}})
    path = tmp_path / "teacher.csv"
    outputs.to_csv(path, index=False)
    return teacher_runs.import_file(session, actor=actor, project=project, dataset_id=dataset.id, path=path)


def trained_student(session: Session, engine, *, actor: User, project: Project,
                    teacher_run: TeacherRun) -> TrainingRun:
    run, job = training_runs.start_training(session, actor=actor, project=project, teacher_run_id=teacher_run.id,
                                            config=FAST)
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    session.expire_all()
    return training_runs.get_run(session, run.id)


def gated_routing(session: Session, *, demo: dict, tmp_path: Path) -> Project:
    """The routing project with a holdout and an always-right imported teacher (dana's), its easy gate locked."""
    project = projects.get_project(session, "Support ticket routing")
    teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    return project


def easy_gate(**overrides) -> dict:
    """A gate the keyword student can pass: accuracy at 98 % of the teacher's, a queue slice floor."""
    spec = {
        "metric": "accuracy", "quality_floor": {"kind": "relative-to-teacher", "value": 0.9},
        "slice_floors": [{"column": "queue", "value": "billing", "floor": 0.8, "min_n": 5}],
        "severe_errors": {"classes": ["account"], "max_rate": 0.2, "min_n": 10},
        "p95_latency_ms": 5000.0, "cost_per_1k": 1.0, "payback_months": 12.0,
    }
    spec.update(overrides)
    return spec


def other_drivers_teacher(session: Session, *, admin: User, project: Project, answers: pd.DataFrame,
                          tmp_path: Path, labels: list[str] | None = None) -> TeacherRun:
    """A teacher file (id, label) imported on the holdout's dataset by kim, a second driver who is not the author
    of the predictions under test: teacher answers fixed before the student's file, so they may set the bar."""
    from sqlmodel import select

    from core.access import people, projects

    if session.exec(select(User).where(User.username == "kim")).first() is None:
        people.create_user(session, actor=admin, username="kim", display_name="Kim Driver",
                           password="kim-driver-pass-1")
        projects.assign_role(session, actor=admin, project=project, username="kim", role="driver")
    path = tmp_path / "kims-teacher.csv"
    answers.to_csv(path, index=False)
    return teacher_runs.import_file(session, actor=people.get_user(session, "kim"), project=project,
                                    dataset_id=holdout.current(session, project_id=project.id).dataset_id,
                                    path=path, labels=labels)
