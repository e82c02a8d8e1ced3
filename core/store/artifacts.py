"""Artifact files (Parquet tables, model directories) whose SHA-256 the database records.

Large data never goes into the database: it lives under the data directory and
the database vouches for it by hash, so a sign-off can name exactly what it saw.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlmodel import Session

from core.domain.errors import ArtifactTampered
from core.store import audit
from core.store.config import get_settings
from core.store.models import Artifact, Project, User, id_of

if TYPE_CHECKING:  # pandas is imported where a table is read or written: `stillroom audit verify` needs none
    import pandas as pd

# Files store_table (or track_new_file) wrote in a session's open transaction: kept when it commits,
# deleted when it rolls back, so a failed state change never leaves an unrecorded file behind.
_NEW_FILES = "stillroom_new_files"


def track_new_file(session: Session, path: Path) -> None:
    session.info.setdefault(_NEW_FILES, []).append(Path(path))


@event.listens_for(Session, "after_commit")
def _keep_new_files(session: Session) -> None:
    session.info.pop(_NEW_FILES, None)


@event.listens_for(Session, "after_rollback")
def _remove_new_files(session: Session) -> None:
    for path in session.info.pop(_NEW_FILES, []):
        path.unlink(missing_ok=True)


def data_dir() -> Path:
    return Path(get_settings().data_dir).resolve()


def project_dir(project_id: int, *parts: str) -> Path:
    path = data_dir() / "artifacts" / f"project-{project_id}" / Path(*parts) if parts else (
        data_dir() / "artifacts" / f"project-{project_id}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def dir_sha256(path: Path) -> str:
    """One hash over every file of a directory (names and contents, in sorted order)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def store_table(
    session: Session, *, project: Project, actor: User, df: pd.DataFrame, kind: str, meta: dict[str, Any] | None = None
) -> Artifact:
    """Write ``df`` as Parquet and add its Artifact row to the caller's transaction.

    The file is written under a temporary name and renamed, so a crash never
    leaves a half-written file under a recorded name.
    """
    folder = project_dir(id_of(project))
    name = f"{kind}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = folder / f".{name}.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, folder / name)
    track_new_file(session, folder / name)
    return register(session, project=project, actor=actor, path=folder / name, kind=kind,
                    n_rows=len(df), meta=meta)


def register(
    session: Session, *, project: Project, actor: User, path: Path, kind: str,
    n_rows: int | None = None, meta: dict[str, Any] | None = None,
) -> Artifact:
    """Record an existing file or directory under the data directory by its hash."""
    path = Path(path).resolve()
    is_dir = path.is_dir()
    art = Artifact(
        project_id=id_of(project), kind=kind, path=str(path.relative_to(data_dir())),
        sha256=dir_sha256(path) if is_dir else file_sha256(path),
        n_rows=n_rows,
        n_bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if is_dir else path.stat().st_size,
        meta=meta or {}, created_by=id_of(actor),
    )
    session.add(art)
    session.flush()
    audit.record(session, actor=actor, action="artifact.register", entity="artifact", entity_id=art.id,
                 project_id=project.id, payload={"kind": kind, "path": art.path, "sha256": art.sha256,
                                                 "n_bytes": art.n_bytes})
    return art


def path_of(artifact: Artifact) -> Path:
    return data_dir() / artifact.path


def verify(artifact: Artifact) -> None:
    """Raise unless the file still has the hash recorded when it was stored."""
    path = path_of(artifact)
    if not path.exists():
        raise ArtifactTampered(
            f"Artifact #{artifact.id} ({artifact.kind}) is missing at {artifact.path}: restore it from backup."
        )
    actual = dir_sha256(path) if path.is_dir() else file_sha256(path)
    if actual != artifact.sha256:
        raise ArtifactTampered(
            f"Artifact #{artifact.id} ({artifact.kind}) was changed after it was recorded: "
            "its SHA-256 no longer matches. Restore the original file."
        )


def load_table(artifact: Artifact, *, check: bool = True) -> pd.DataFrame:
    import pandas as pd

    if check:
        verify(artifact)
    return pd.read_parquet(path_of(artifact))
