"""Training checkpoints copied to the artifact store, as a training run's record names them: the shape of that
record (core.training.checkpoints writes it, and copies the files) and the check ``stillroom audit verify`` makes
of every recorded copy's bytes against its recorded SHA-256."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.store.artifacts import ArtifactStore, artifact_store
from core.store.models import TrainingRun

KEY = "checkpoints"  # the run's metrics key: {"last": {...}, "best": {...}}, each a CheckpointCopy
STORED = "stored"  # the copies lie under "<the run's checkpoint_dir>/stored/" in the store


class CheckpointCopy(BaseModel):
    """One checkpoint as the run records it: its epoch, where its copy lies in the store, and that copy's hash."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    path: str
    sha256: str


_RECORD = TypeAdapter(dict[str, CheckpointCopy])


def recorded(metrics: dict[str, Any] | None) -> dict[str, CheckpointCopy]:
    """The copies a run's metrics record, by role (last, best); ValidationError when the record no longer fits."""
    return _RECORD.validate_python((metrics or {}).get(KEY) or {})


def stored_dir(run: TrainingRun) -> str:
    """Where the run's copies lie in the store (relative, like an artifact's path)."""
    return f"{run.checkpoint_dir}/{STORED}"


@dataclass(frozen=True)
class RunCopies:
    """A training run's recorded copies, with the job that ran it, as verify names them."""

    run_id: int
    job_id: int | None
    copies: dict[str, CheckpointCopy]

    def who(self) -> str:
        job = f" (job #{self.job_id})" if self.job_id is not None else ""
        return f"training run #{self.run_id}{job}"


def copy_problems(engine: Engine) -> list[str]:
    """Every recorded checkpoint copy that is missing from the store or whose bytes no longer have the recorded
    SHA-256, naming the run, its job and the copy's path (the files part of ``stillroom audit verify``)."""
    store = artifact_store()
    with Session(engine) as s:
        rows = s.exec(select(col(TrainingRun.id), col(TrainingRun.job_id), col(TrainingRun.metrics))
                      .order_by(col(TrainingRun.id))).all()
    out: list[str] = []
    hashed: dict[str, str | None] = {}  # a copy recorded as both last and best is read once
    for run_id, job_id, metrics in rows:
        if not (metrics or {}).get(KEY):
            continue
        try:
            run = RunCopies(int(run_id or 0), job_id, recorded(metrics))
        except ValidationError:
            out.append(f"training run #{run_id}'s record of its checkpoint copies ({KEY!r} in its metrics) no "
                       "longer fits {epoch, path, sha256}: it was changed; no worker can resume from it.")
            continue
        out += _run_problems(store, run, hashed)
    return out


def _run_problems(store: ArtifactStore, run: RunCopies, hashed: dict[str, str | None]) -> Iterable[str]:
    for role, copy in run.copies.items():
        if copy.path not in hashed:
            hashed[copy.path] = store.sha256(copy.path) if store.exists(copy.path) else None
        where = f"{run.who()}'s {role} checkpoint (epoch {copy.epoch}) at {copy.path}"
        if hashed[copy.path] is None:
            yield f"{where} is missing from the artifact store: restore it from backup."
        elif hashed[copy.path] != copy.sha256:
            yield (f"{where} no longer has its recorded SHA-256: it was changed. Restore it from backup, or start "
                   "a new run.")
