"""Distillation runs: started, resumed and compared by the driver; a finished one loads as a predictor.

The rules are checked here, before a job is queued, and again when the job
starts: only the project's driver trains, only under a locked gate, only with a
fixed holdout. Torch is imported only where a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.domain.errors import ArtifactTampered, GovernanceViolation, InvalidInput, NotFound
from core.domain.jobs import TrainParams
from core.domain.roles import Role
from core.domain.validation import parse
from core.gate import gate
from core.ml import init
from core.ml.config import TrainConfig
from core.store import audit, jobs, vouched
from core.store.artifacts import data_dir, path_of, project_dir, verify
from core.store.models import Artifact, GateVersion, Job, Project, TeacherRun, TrainingPoint, TrainingRun, User
from core.teacher import model_files
from core.training import pool

JOB_KIND = jobs.JobKind.TRAIN


@dataclass(frozen=True)
class RunComparison:
    """One row of the driver's comparison of families and sizes trained on the same data."""

    run_id: int
    family: str
    size: str
    status: str
    params: int | None
    epochs_done: int
    best_epoch: int | None
    val_agreement: float | None  # with the teacher, on the validation split (never the holdout)
    val_accuracy: float | None  # against references, where the validation rows have them
    ms_per_example: float | None  # batched, measured when the run finished
    single_p95_ms: float | None
    started_from: str | None  # core.ml.init.StudentStart's sentence: config, teacher layers, an encoder, pre-trained
    teacher_run_id: int
    teacher_filter_id: int | None
    gate_version: int | None
    created_at: datetime


def require_can_train(session: Session, *, actor: User, project: Project) -> GateVersion:
    """The gate a run trains under; refuses anyone but the driver, and any project without a locked gate."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="train students")
    return gate.require_locked(session, project=project, doing="training a student")


def start_training(
    session: Session, *, actor: User, project: Project, teacher_run_id: int,
    filter_id: int | None = None, config: TrainConfig | dict | None = None,
) -> tuple[TrainingRun, Job]:
    """Queue a distillation run as a job of kind "train"; the caller runs or detaches the job."""
    gate_version = require_can_train(session, actor=actor, project=project)
    cfg = parse(TrainConfig, config or {})
    teacher_run, teacher_filter = pool.teacher_source(session, project=project, teacher_run_id=teacher_run_id,
                                                      filter_id=filter_id)
    pool.require_holdout(session, project=project)
    encoder = init.check_encoder(cfg.student_init) if cfg.student_init else None  # refused before any row
    run = TrainingRun(
        project_id=project.id, gate_version_id=gate_version.id, teacher_run_id=teacher_run.id,
        teacher_filter_id=teacher_filter.id if teacher_filter else None, family=cfg.family, size=cfg.size,
        config=cfg.model_dump(mode="json"), status="queued", created_by=actor.id,
    )
    session.add(run)
    session.flush()
    run.checkpoint_dir = str(project_dir(project.id, "training", f"run-{run.id}").relative_to(data_dir()))
    audit.record(session, actor=actor, action="training.submit", entity="training_run", entity_id=run.id,
                 project_id=project.id, payload={"teacher_run": teacher_run.id, "filter": run.teacher_filter_id,
                                                 "gate_version": gate_version.version, "config": run.config,
                                                 **({"student_init_sha256": encoder.sha256} if encoder else {})})
    job = jobs.submit(session, actor=actor, project=project, kind=JOB_KIND, params=TrainParams(run_id=run.id))
    run.job_id = job.id
    session.add(run)
    session.commit()
    return run, job


def resume_training(session: Session, *, actor: User, run_id: int) -> tuple[TrainingRun, Job]:
    """Queue a new job that carries a failed run on from its last checkpoint."""
    run = get_run(session, run_id)
    project = session.get(Project, run.project_id)
    require_can_train(session, actor=actor, project=project)
    if run.status == "running" and run.job_id is not None:
        jobs.get(session, run.job_id)  # marks the job failed when its process died
        if session.get(Job, run.job_id).status == "failed":
            run.status = "failed"
    if run.status not in ("failed", "queued"):
        raise InvalidInput(f"training run #{run.id} is {run.status}: only a failed or queued run can be resumed.",
                           field="run")
    run.status = "queued"
    session.add(run)
    audit.record(session, actor=actor, action="training.resume", entity="training_run", entity_id=run.id,
                 project_id=project.id, payload={"epochs_done": run.epochs_done})
    job = jobs.submit(session, actor=actor, project=project, kind=JOB_KIND, params=TrainParams(run_id=run.id))
    run.job_id = job.id
    session.add(run)
    session.commit()
    return run, job


def get_run(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"no training run #{run_id}: list them with `stillroom train runs PROJECT`.", field="run")
    return run


def list_runs(session: Session, *, project_id: int) -> list[TrainingRun]:
    return list(session.exec(
        select(TrainingRun).where(TrainingRun.project_id == project_id).order_by(col(TrainingRun.id))
    ).all())


def compare_runs(session: Session, *, project_id: int) -> list[RunComparison]:
    """Family, size, parameters, agreement, accuracy and speed of each of the project's runs."""
    versions = {g.id: g.version for g in gate.history(session, project_id=project_id)}
    out = []
    for r in list_runs(session, project_id=project_id):
        m = r.metrics or {}
        out.append(RunComparison(
            run_id=r.id, family=r.family, size=r.size, status=r.status, params=m.get("params"),
            epochs_done=r.epochs_done, best_epoch=r.best_epoch, val_agreement=m.get("val_agreement"),
            val_accuracy=m.get("val_accuracy"), ms_per_example=m.get("ms_per_example"),
            single_p95_ms=m.get("single_p95_ms"), started_from=m.get("init"), teacher_run_id=r.teacher_run_id,
            teacher_filter_id=r.teacher_filter_id, gate_version=versions.get(r.gate_version_id),
            created_at=r.created_at,
        ))
    return out


@dataclass(frozen=True)
class NeverPredicted:
    """A class the finished student never answers on its validation rows, though the teacher does."""

    label: str
    teacher_count: int  # validation rows the teacher gave this label
    n_val: int

    def sentence(self, run_id: int) -> str:
        return (f"Run #{run_id} never predicts {self.label!r} on its {self.n_val:,} validation rows, where the "
                f"teacher answered {self.label!r} {self.teacher_count:,} times: collect or oversample examples of "
                "it, or train longer, before evaluating.")


def never_predicted(run: TrainingRun) -> list[NeverPredicted]:
    """Classes a finished run never predicts on its validation rows but the teacher labels there (worst first)."""
    m = run.metrics or {}
    predicted, taught = m.get("val_predicted"), m.get("val_teacher_labels") or {}
    if predicted is None:  # not finished, or finished before this was measured
        return []
    n_val = int(m.get("n_val") or sum(predicted.values()))
    out = [NeverPredicted(label, int(taught.get(label, 0)), n_val)
           for label, count in predicted.items() if count == 0 and taught.get(label, 0) > 0]
    return sorted(out, key=lambda x: -x.teacher_count)


def loss_curve(session: Session, *, run_id: int) -> pd.DataFrame:
    """The run's points in order (step points have no validation figures), for a plotly line chart."""
    rows = session.exec(select(TrainingPoint).where(TrainingPoint.run_id == run_id)
                        .order_by(col(TrainingPoint.step), col(TrainingPoint.id))).all()
    return pd.DataFrame([{"epoch": p.epoch, "step": p.step, "train_loss": p.train_loss, "val_loss": p.val_loss,
                          "val_agreement": p.val_agreement} for p in rows],
                        columns=["epoch", "step", "train_loss", "val_loss", "val_agreement"])


def checkpoint_path(run: TrainingRun) -> Path:
    return data_dir() / run.checkpoint_dir


def teacher_tokenizer_dir(teacher_run: TeacherRun) -> Path | None:
    """The local teacher's model directory when it holds a tokenizer (students then share its vocabulary): for a
    run that recorded its files, exactly those, on any host (core.teacher.model_files)."""
    recorded = model_files.has_tokenizer(teacher_run) if teacher_run.adapter == "local" else None
    if recorded is not None:
        return model_files.of_run(teacher_run) if recorded else None
    for key in ("model_dir", "model_path", "path"):
        value = (teacher_run.config or {}).get(key)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value) if Path(value).is_absolute() else data_dir() / value
        if (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists():
            return path
    return None


def student_artifact(session: Session, run: TrainingRun) -> Artifact:
    """The finished run's model directory as recorded in the append-only artifact table, hash-checked.

    The hash comes from the artifact row the audit chain vouches for, never from the run's editable metrics.
    """
    if run.status != "done":
        raise InvalidInput(f"training run #{run.id} is {run.status}: only a finished run has a student to load.",
                           field="run")
    rows = session.exec(select(Artifact).where(Artifact.project_id == run.project_id, Artifact.kind == "student")
                        .order_by(col(Artifact.id))).all()
    mine = [a for a in rows if (a.meta or {}).get("training_run") == run.id]
    if not mine:
        raise GovernanceViolation(f"training run #{run.id} has no recorded student artifact: train it again.")
    art = mine[-1]
    vouched.require(session, art)
    try:
        verify(art)
    except ArtifactTampered as exc:
        raise ArtifactTampered(f"the student of training run #{run.id} cannot be used: {exc}") from None
    return art


def load_student(session: Session, run: TrainingRun):
    """The finished run's best student as a predictor (``predict_proba(texts)``, ``labels``), hash-checked:
    refused (ArtifactTampered) when any file of its model directory changed since training recorded it. A
    transformer answers through its checked ONNX Runtime export (core.ml.lean, eager with a note when the export
    fails), in evaluation and in ``stillroom serve`` alike."""
    from core.ml import lean  # lazy: imports torch

    return lean.load_for_inference(path_of(student_artifact(session, run)))
