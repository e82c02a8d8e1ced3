"""A training run's checkpoints in the artifact store, so that a worker on another host resumes where it stopped.

The loop (core.ml.loop) writes each epoch's checkpoint to the run's directory on this machine and keeps the last
and the best. When the artifact store is not this machine's data directory (STILLROOM_ARTIFACT_STORE), ``keep``
also copies those two to the store, under a name of their own that carries their SHA-256 (so two workers that
both held the job never share or overwrite a copy), and records epoch, name and hash in the run's metrics in the
same transaction as the epoch's figures: on a worker's run that transaction is fenced (core.store.jobs.fenced), so
only the job's holder records a checkpoint, and a copy whose transaction does not commit is removed. ``restore``
(when a run starts) brings the recorded checkpoints into this machine's directory, each checked against its
recorded hash, and sets aside local epochs the record does not vouch for; the loop then resumes from the recorded
last epoch. With the default store (the data directory) both do nothing: the checkpoints already lie where every
run of the job reads them. ``sweep`` removes the copies no run records that a process left when it died between
copying and recording; ``stillroom audit verify`` checks every recorded copy (core.store.checkpoint_copies).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import event
from sqlmodel import Session, col, select

from core.domain.errors import ArtifactTampered, RecordTampered
from core.store import audit, sweeping
from core.store.artifacts import ArtifactStore, artifact_store, data_dir, dir_sha256, track_new_key
from core.store.checkpoint_copies import KEY, CheckpointCopy, recorded, stored_dir
from core.store.models import Job, TrainingRun, User, utcnow
from core.store.sweeping import Swept

_PRUNE = "stillroom_checkpoints_to_prune"  # store names to drop once the session that replaced them commits


def keep(session: Session, run: TrainingRun, *, epoch: int) -> None:
    """Copy the run's last (``epoch``) and best (``run.best_epoch``) checkpoints to the store and record them in
    ``run.metrics``, for the caller's transaction: a copy made here is removed unless it commits (a worker that
    lost its job records nothing, so it keeps nothing: core.store.jobs.fenced), and copies no longer recorded
    are removed once it commits."""
    store = artifact_store()
    if store.local:
        return
    before = _recorded(run)
    last = _copy(session, store, run, epoch, known=before.values())
    kept = {"last": last, "best": _copy(session, store, run, run.best_epoch or epoch, known=[*before.values(), last])}
    run.metrics = {**(run.metrics or {}), KEY: {role: copy.model_dump() for role, copy in kept.items()}}
    stale = {c.path for c in before.values()} - {c.path for c in kept.values()}
    if stale:
        session.info.setdefault(_PRUNE, set()).update(stale)


def _recorded(run: TrainingRun) -> dict[str, CheckpointCopy]:
    try:
        return recorded(run.metrics)
    except ValidationError as exc:
        raise RecordTampered(f"training run #{run.id}'s record of its checkpoint copies was changed outside "
                             "Stillroom and no longer fits {epoch, path, sha256}: the run cannot resume from it; "
                             "start a new run.") from exc


def _copy(session: Session, store: ArtifactStore, run: TrainingRun, epoch: int, *,
          known: Iterable[CheckpointCopy]) -> CheckpointCopy:
    """Epoch-N's copy in the store: one already recorded (or just made) for that epoch, else a new one under a name
    of its own (its hash and a random tag: two workers that both held the job never share a copy, so the one
    that lost it removes only its own)."""
    for copy in known:
        if copy.epoch == epoch:
            return copy
    local = Path(data_dir()) / run.checkpoint_dir / f"epoch-{epoch}"
    sha = dir_sha256(local)
    rel = f"{stored_dir(run)}/epoch-{epoch}-{sha[:16]}-{uuid.uuid4().hex[:8]}"
    track_new_key(session, rel)  # before the upload: a copy cut short is removed too
    store.upload(local, rel)
    return CheckpointCopy(epoch=epoch, path=rel, sha256=sha)


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
    store = artifact_store()
    copies = {} if store.local else _recorded(run)
    if not copies:
        return
    out = Path(data_dir()) / run.checkpoint_dir
    for copy in copies.values():
        local = out / f"epoch-{copy.epoch}"
        if not (local.is_dir() and dir_sha256(local) == copy.sha256):
            _fetch(store, run, copy, local)
    last = copies["last"].epoch
    for extra in out.glob("epoch-*"):
        suffix = extra.name.removeprefix("epoch-")
        if suffix.isdigit() and int(suffix) > last:
            shutil.rmtree(extra, ignore_errors=True)  # written after the last record, by a run that then stopped


def _fetch(store: ArtifactStore, run: TrainingRun, copy: CheckpointCopy, local: Path) -> None:
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}")
    key = store.key(copy.path)
    names = [str(k)[len(key.rstrip("/")) + 1:] for k in store.fs.find(key)] if store.exists(copy.path) else []
    for name in names:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(f"{copy.path}/{name}"))
    if not names or dir_sha256(tmp) != copy.sha256:
        shutil.rmtree(tmp, ignore_errors=True)
        what = "is missing from" if not names else "was changed in"
        raise ArtifactTampered(
            f"training run #{run.id}'s checkpoint of epoch {copy.epoch} {what} the artifact store "
            f"({copy.path}; SHA-256 recorded {copy.sha256[:12]}…): the run cannot resume from it. Restore "
            "it from backup, or start a new run.")
    shutil.rmtree(local, ignore_errors=True)
    tmp.rename(local)


# --------------------------------------------------------------------------- copies no run records


WHAT = "checkpoint copy(ies) that no training run records"


def sweep(session: Session, *, actor: User, grace: timedelta, now: datetime | None = None) -> Swept:
    """Remove the checkpoint copies in the artifact store that no training run records, written more than ``grace``
    ago, of runs whose job is not running (admins; one audit event per run swept). A process that died between
    copying and recording left them; a recorded copy is never removed, and a copy of a running job, or younger
    than the grace, may still be about to be recorded."""
    sweeping.may_sweep(actor, grace=grace, what="checkpoint copies")
    store = artifact_store()
    if store.local:
        return Swept(WHAT)  # the default store holds no copies: the checkpoints lie in the data directory
    before = (now or utcnow()) - grace
    removed, left = [], 0
    runs = session.exec(select(TrainingRun, Job.status).join(Job, col(TrainingRun.job_id) == col(Job.id),
                                                             isouter=True)
                        .where(col(TrainingRun.checkpoint_dir) != "").order_by(col(TrainingRun.id))).all()
    for run, job_status in runs:
        gone, kept = _sweep_run(store, run, before=before, busy=(job_status or run.status) == "running")
        if gone:
            audit.record(session, actor=actor, action="training.checkpoints_swept", entity="training_run",
                         entity_id=run.id, project_id=run.project_id, payload={"removed": gone})
        removed, left = removed + gone, left + kept
    session.commit()
    return Swept(WHAT, removed, left, why_left="written within the grace, or their job is running")


def _sweep_run(store: ArtifactStore, run: TrainingRun, *, before: datetime, busy: bool) -> tuple[list[str], int]:
    """(the run's unrecorded copies removed, those left). A run whose record no longer reads keeps everything."""
    folder = stored_dir(run)
    if not store.exists(folder):
        return [], 0
    try:
        keep_paths = {copy.path for copy in recorded(run.metrics).values()}
    except ValidationError:
        return [], 0
    gone, left = [], 0
    for key in store.fs.ls(store.key(folder), detail=False):
        rel = f"{folder}/{str(key).rstrip('/').rsplit('/', 1)[1]}"
        if rel in keep_paths:
            continue
        if busy or not sweeping.stale(store, rel, before=before):
            left += 1
            continue
        store.remove(rel)
        gone.append(rel)
    return gone, left

