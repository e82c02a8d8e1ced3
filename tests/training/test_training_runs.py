"""Training runs through the database: refused without a locked gate, a holdout or the driver's role;
a job that trains, records its loss curve, saves a loadable student, and is audited."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from eval_helpers import FAST, ticket_rows
from sqlmodel import select
from teacher_helpers import LABELS

from core.access import projects
from core.data import holdout
from core.domain.errors import GateNotLocked, GovernanceViolation, PermissionDenied
from core.store import jobs
from core.store.models import AuditEvent, TrainingPoint, TrainingRun
from core.teacher import runs as teacher_runs
from core.training import runs


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


@pytest.fixture
def teacher_run(session, demo, routing, tmp_path):
    """Imported rows, a holdout, and a teacher's outputs (imported from a file, labels with probabilities)."""
    from teacher_helpers import make_dataset

    df = ticket_rows()
    dataset = make_dataset(session, actor=demo["dana"], project=routing, df=df)
    holdout.fix_holdout(session, actor=demo["dana"], project=routing, dataset_id=dataset.id, fraction=0.2,
                        stratify_by=["queue"])
    outputs = pd.DataFrame({"id": df["id"], "label": df["queue"],
                            **{f"prob_{label}": (df["queue"] == label).map({True: 0.9, False: 0.05})
                               for label in LABELS}})
    path = tmp_path / "teacher.csv"
    outputs.to_csv(path, index=False)
    return teacher_runs.import_file(session, actor=demo["dana"], project=routing, dataset_id=dataset.id, path=path)


def test_training_without_a_locked_gate_is_refused(session, demo):
    moderation = projects.get_project(session, "Comment moderation")
    with pytest.raises(GateNotLocked, match="not locked: the sponsor must lock it before training"):
        runs.start_training(session, actor=demo["dana"], project=moderation, teacher_run_id=1, config=FAST)
    assert session.exec(select(TrainingRun)).all() == []


def test_the_cli_exits_3_when_the_gate_is_not_locked(engine, demo):
    from core.cli import cli

    result = CliRunner().invoke(cli, ["--as", "dana", "train", "start", "Comment moderation", "--teacher-run", "1"])
    assert result.exit_code == 3
    assert "not locked" in result.stderr


def test_only_the_driver_trains(session, demo, routing, teacher_run):
    for person in ("val", "sam"):
        with pytest.raises(PermissionDenied, match="Only a driver"):
            runs.start_training(session, actor=demo[person], project=routing, teacher_run_id=teacher_run.id,
                                config=FAST)


def test_training_without_a_holdout_is_refused(session, demo, routing, tmp_path):
    from teacher_helpers import make_dataset

    df = ticket_rows(30)
    dataset = make_dataset(session, actor=demo["dana"], project=routing, df=df)
    path = tmp_path / "t.csv"
    df[["id"]].assign(label=df["queue"]).to_csv(path, index=False)
    run = teacher_runs.import_file(session, actor=demo["dana"], project=routing, dataset_id=dataset.id, path=path)
    with pytest.raises(GovernanceViolation, match="has no holdout"):
        runs.start_training(session, actor=demo["dana"], project=routing, teacher_run_id=run.id, config=FAST)


def test_a_training_job_trains_records_its_curve_and_saves_a_loadable_student(session, engine, demo, routing,
                                                                              teacher_run):
    run, job = runs.start_training(session, actor=demo["dana"], project=routing, teacher_run_id=teacher_run.id,
                                   config=FAST)
    seen = []
    done = jobs.run(job.id, engine=engine, on_progress=lambda f, m: seen.append(f))
    assert done.status == "done", done.error
    session.expire_all()
    run = runs.get_run(session, run.id)
    assert run.status == "done" and run.epochs_done >= 1 and run.gate_version_id
    points = session.exec(select(TrainingPoint).where(TrainingPoint.run_id == run.id)).all()
    assert any(p.val_loss is not None for p in points)
    assert seen == sorted(seen) and seen[-1] >= 0.9 and done.progress == 1.0
    held = holdout.holdout_rows(session, project_id=routing.id)
    student = runs.load_student(session, run)
    probs = student.predict_proba(held["text"].tolist())
    agreement = (pd.Series([student.labels[i] for i in probs.argmax(axis=1)]) == held["queue"].to_numpy()).mean()
    assert agreement >= 0.9  # a keyword task: the student must learn it from the teacher
    actions = {e.action for e in session.exec(select(AuditEvent)).all()}
    assert {"training.submit", "job.done"} <= actions
