"""Sweeping the artifact store of copies nothing records: what a process left when it died between copying a file
to the store and recording it. The rules every sweep keeps live here (core.training.checkpoints sweeps training
checkpoints, core.store.stored_dirs a local teacher's model files): only an admin sweeps; a copy written within the
grace is left (it may be about to be recorded); a copy whose write time the store cannot give is never removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.domain.errors import InvalidInput, PermissionDenied
from core.store.artifacts import ArtifactStore
from core.store.models import User


@dataclass(frozen=True)
class Swept:
    """What a sweep removed (store names), how many unrecorded copies it left and why."""

    what: str  # "checkpoint copy(ies) that no training run records"
    removed: list[str] = field(default_factory=list)
    left: int = 0
    why_left: str = "written within the grace"

    def sentence(self) -> str:
        left = f"; {self.left} left ({self.why_left})" if self.left else ""
        return f"Removed {len(self.removed)} {self.what}{left}."


def may_sweep(actor: User, *, grace: timedelta, what: str) -> None:
    """PermissionDenied unless ``actor`` is an admin; InvalidInput naming the grace when it is negative."""
    if not actor.is_admin:
        raise PermissionDenied(f"Only an admin sweeps the artifact store's {what}; {actor.username} is not an "
                               "admin.")
    if grace < timedelta(0):
        raise InvalidInput("grace: copies written within it are left, so it is zero or more; give zero or more "
                           "hours.", field="grace")


def stale(store: ArtifactStore, rel: str, *, before: datetime) -> bool:
    """Whether the copy at ``rel`` (a file, or a directory's newest file) was written before ``before``; False when
    the store cannot say when (such a copy is never swept)."""
    written = _written(store, rel)
    return written is not None and written <= before


def _written(store: ArtifactStore, rel: str) -> datetime | None:
    key = store.key(rel)
    try:
        if store.fs is None:
            path = Path(key)
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            times = [datetime.fromtimestamp(p.stat().st_mtime, UTC) for p in files]
        else:
            times = [store.fs.modified(f) for f in store.fs.find(key)]
    except (NotImplementedError, OSError):
        return None
    if not times:
        return None
    return max(t if t.tzinfo else t.replace(tzinfo=UTC) for t in times)  # a store that names no zone keeps UTC
