"""A training run's checkpoints in the artifact store, so that a worker on another host resumes where it stopped.

The loop (core.ml.loop) writes each epoch's checkpoint to the run's directory on this machine and keeps the last
and the best. When the artifact store is not this machine's data directory (STILLROOM_ARTIFACT_STORE), ``keep``
also copies those two to the store, under a name that carries their SHA-256 (so two workers that both held the job
never overwrite each other's copy), and records epoch, name and hash in the run's metrics in the same transaction
as the epoch's figures: on a worker's run that transaction is fenced (core.store.jobs.fenced), so only the job's
holder records a checkpoint. ``restore`` (when a run starts) brings the recorded checkpoints into this machine's
directory, each checked against its recorded hash, and sets aside local epochs the record does not vouch for; the
loop then resumes from the recorded last epoch. With the default store (the data directory) both do nothing:
the checkpoints already lie where every run of the job reads them.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from core.domain.errors import ArtifactTampered
from core.store.artifacts import ArtifactStore, artifact_store, data_dir, dir_sha256
from core.store.models import TrainingRun

KEY = "checkpoints"  # the run's metrics key: {"last": {...}, "best": {...}}, each {"epoch", "path", "sha256"}
_PRUNE = "stillroom_checkpoints_to_prune"  # store names to drop once the session that replaced them commits


def keep(session: Session, run: TrainingRun, *, epoch: int) -> None:
    """Copy the run's last (``epoch``) and best (``run.best_epoch``) checkpoints to the store and record them in
    ``run.metrics``, for the caller's transaction; copies no longer recorded are removed once it commits."""
    store = artifact_store()
    if store.local:
        return
    before = dict((run.metrics or {}).get(KEY) or {})
    kept = {"last": _copy(store, run, epoch, before), "best": _copy(store, run, run.best_epoch or epoch, before)}
    run.metrics = {**(run.metrics or {}), KEY: kept}
    stale = {c["path"] for c in before.values()} - {c["path"] for c in kept.values()}
    if stale:
        session.info.setdefault(_PRUNE, set()).update(stale)


def _copy(store: ArtifactStore, run: TrainingRun, epoch: int, before: dict[str, Any]) -> dict[str, Any]:
    """The record of epoch-N in the store: copied there unless a recorded copy is already that epoch's."""
    for known in before.values():
        if known["epoch"] == epoch:
            return dict(known)
    local = Path(data_dir()) / run.checkpoint_dir / f"epoch-{epoch}"
    sha = dir_sha256(local)
    rel = f"{run.checkpoint_dir}/stored/epoch-{epoch}-{sha[:16]}"
    if not store.exists(rel):
        store.upload(local, rel)
    return {"epoch": epoch, "path": rel, "sha256": sha}


@event.listens_for(Session, "after_commit")
def _prune(session: Session) -> None:
    stale = session.info.pop(_PRUNE, None)
    if stale:
        store = artifact_store()
        for rel in stale:
            store.remove(rel)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PRUNE, None)  # the record still names them


def restore(run: TrainingRun) -> None:
    """Make this machine's checkpoint directory hold what the run's record vouches for: each recorded checkpoint
    fetched from the store unless an identical copy is here (ArtifactTampered, naming the fix, when the store's
    copy no longer has its hash), and local epochs past the recorded last set aside, so the run resumes from it."""
    recorded = (run.metrics or {}).get(KEY)
    store = artifact_store()
    if store.local or not recorded:
        return
    out = Path(data_dir()) / run.checkpoint_dir
    for kept in recorded.values():
        local = out / f"epoch-{kept['epoch']}"
        if not (local.is_dir() and dir_sha256(local) == kept["sha256"]):
            _fetch(store, run, kept, local)
    last = recorded["last"]["epoch"]
    for extra in out.glob("epoch-*"):
        suffix = extra.name.removeprefix("epoch-")
        if suffix.isdigit() and int(suffix) > last:
            shutil.rmtree(extra, ignore_errors=True)  # written after the last record, by a run that then stopped


def _fetch(store: ArtifactStore, run: TrainingRun, kept: dict[str, Any], local: Path) -> None:
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}")
    key = store.key(kept["path"])
    names = [str(k)[len(key.rstrip("/")) + 1:] for k in store.fs.find(key)] if store.exists(kept["path"]) else []
    for name in names:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(f"{kept['path']}/{name}"))
    if not names or dir_sha256(tmp) != kept["sha256"]:
        shutil.rmtree(tmp, ignore_errors=True)
        what = "is missing from" if not names else "was changed in"
        raise ArtifactTampered(
            f"training run #{run.id}'s checkpoint of epoch {kept['epoch']} {what} the artifact store "
            f"({kept['path']}; SHA-256 recorded {kept['sha256'][:12]}…): the run cannot resume from it. Restore "
            "it from backup, or start a new run.")
    shutil.rmtree(local, ignore_errors=True)
    tmp.rename(local)
