"""Artifact files (Parquet tables, model directories) whose SHA-256 the database records.

Large data never goes into the database: it lives in the artifact store and the
database vouches for it by hash, so a sign-off can name exactly what it saw. The
store is the data directory on this machine by default, or any fsspec URL a team
mounts (STILLROOM_ARTIFACT_STORE: a shared path, object storage), so workers on
several hosts read what another wrote; an artifact's path is the same relative
name in either, and every read checks the bytes against the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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


def track_new_key(session: Session, rel: str) -> None:
    """``rel``, just written to a store that is not this disk, is kept only if the session's transaction commits
    (as track_new_file for a file on this disk)."""
    session.info.setdefault(_NEW_KEYS, []).append(rel)


_NEW_KEYS = "stillroom_new_store_keys"  # the same, for what was written to a store that is not this disk


@event.listens_for(Session, "after_commit")
def _keep_new_files(session: Session) -> None:
    session.info.pop(_NEW_FILES, None)
    session.info.pop(_NEW_KEYS, None)


@event.listens_for(Session, "after_rollback")
def _remove_new_files(session: Session) -> None:
    for path in session.info.pop(_NEW_FILES, []):
        path.unlink(missing_ok=True)
    keys = session.info.pop(_NEW_KEYS, [])
    if keys:
        store = artifact_store()
        for rel in keys:
            store.remove(rel)


@event.listens_for(Session, "after_transaction_end")
def _remove_unkept_files(session: Session, transaction: Any) -> None:
    # A transaction that ends neither committed nor rolled back (its session closed after a commit that raised,
    # such as a fenced one of a worker that lost its job: core.store.jobs.fenced) keeps no file either.
    if transaction.parent is None:
        _remove_new_files(session)


@dataclass(frozen=True)
class ArtifactStore:
    """An fsspec filesystem and the root under which an artifact's relative path names its file or directory."""

    fs: Any  # an fsspec AbstractFileSystem; None for this machine's disk (no fsspec import on the default path)
    root: str

    @property
    def local(self) -> bool:
        """Whether the store is this machine's data directory (files are read and written where they lie)."""
        return self.fs is None

    def key(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{Path(rel).as_posix()}"

    def exists(self, rel: str) -> bool:
        return Path(self.key(rel)).exists() if self.fs is None else bool(self.fs.exists(self.key(rel)))

    def read_bytes(self, rel: str) -> bytes:
        return Path(self.key(rel)).read_bytes() if self.fs is None else bytes(self.fs.cat_file(self.key(rel)))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Whole or not at all: locally under a temporary name then renamed; an object store's put is atomic."""
        key = self.key(rel)
        if self.fs is not None:
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(key, data)
            return
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{key.rsplit('/', 1)[0]}/.{key.rsplit('/', 1)[1]}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, key)

    def upload(self, path: Path, rel: str) -> None:
        """Copy a local file or directory (written on this machine) to ``rel`` in the store."""
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                self.write_bytes(f"{rel}/{f.relative_to(path).as_posix()}", f.read_bytes())
        else:
            self.write_bytes(rel, path.read_bytes())

    def put_file(self, path: Path, rel: str) -> None:
        """Stream a local file to ``rel``, whole or not at all (under a temporary name, then moved), without
        holding it in memory (a model's weights may be gigabytes)."""
        key = self.key(rel)
        tmp = f"{key.rsplit('/', 1)[0]}/.{key.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
        if self.fs is None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp)
            os.replace(tmp, key)
            return
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(path), tmp)
        self.fs.mv(tmp, key)

    def get_file(self, rel: str, path: Path) -> None:
        """Stream ``rel`` to a local file (the caller checks its hash)."""
        if self.fs is None:
            shutil.copyfile(self.key(rel), path)
        else:
            self.fs.get_file(self.key(rel), str(path))

    def remove(self, rel: str) -> None:
        if not self.exists(rel):
            return
        if self.fs is not None:
            self.fs.rm(self.key(rel), recursive=True)
        elif Path(self.key(rel)).is_dir():
            shutil.rmtree(self.key(rel))
        else:
            Path(self.key(rel)).unlink()

    def sha256(self, rel: str) -> str:
        """The hash as file_sha256 / dir_sha256 take it of a local copy: a directory's over its files' relative
        names and contents in sorted order."""
        key = self.key(rel)
        if self.fs is None:
            return _local_sha256(Path(key))
        if not self.fs.isdir(key):
            return _stream_sha256(self.fs, key)
        h = hashlib.sha256()
        # In dir_sha256's order (Path objects sort by their parts, not as strings).
        for name in sorted((str(k)[len(key.rstrip("/")) + 1:] for k in self.fs.find(key)), key=PurePosixPath):
            h.update(name.encode())
            h.update(_stream_sha256(self.fs, f"{key.rstrip('/')}/{name}").encode())
        return h.hexdigest()


def _stream_sha256(fs: Any, key: str) -> str:
    h = hashlib.sha256()
    with fs.open(key, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def artifact_store() -> ArtifactStore:
    """The configured store: STILLROOM_ARTIFACT_STORE (an fsspec URL), else this machine's data directory."""
    url = get_settings().artifact_store
    if not url:
        return ArtifactStore(None, str(data_dir()))
    import fsspec  # lazy: about 0.06 s, paid only where a team configured a store elsewhere

    fs, root = fsspec.core.url_to_fs(url)
    return ArtifactStore(fs, str(root))


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
    """Write ``df`` as Parquet to the artifact store and add its Artifact row to the caller's transaction.

    The file is written under a temporary name and renamed (or put whole to an
    object store), so a crash never leaves a half-written file under a recorded
    name; the hash recorded is of the very bytes written.
    """
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    body = buffer.getvalue()
    rel = f"artifacts/project-{id_of(project)}/{kind}-{uuid.uuid4().hex[:12]}.parquet"
    store = artifact_store()
    store.write_bytes(rel, body)
    if store.local:
        track_new_file(session, data_dir() / rel)
    else:
        track_new_key(session, rel)
    return _record(session, project=project, actor=actor, rel=rel, kind=kind, sha256=hashlib.sha256(body).hexdigest(),
                   n_rows=len(df), n_bytes=len(body), meta=meta)


def register(
    session: Session, *, project: Project, actor: User, path: Path, kind: str,
    n_rows: int | None = None, meta: dict[str, Any] | None = None,
) -> Artifact:
    """Record an existing file or directory under the data directory by its hash (and, when the artifact store
    is not this machine's data directory, copy it there under the same relative name)."""
    path = Path(path).resolve()
    is_dir = path.is_dir()
    rel = str(path.relative_to(data_dir()))
    store = artifact_store()
    if not store.local:
        store.upload(path, rel)
        track_new_key(session, rel)
    return _record(session, project=project, actor=actor, rel=rel, kind=kind,
                   sha256=dir_sha256(path) if is_dir else file_sha256(path), n_rows=n_rows,
                   n_bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if is_dir
                   else path.stat().st_size, meta=meta)


def _record(session: Session, *, project: Project, actor: User, rel: str, kind: str, sha256: str,
            n_rows: int | None, n_bytes: int, meta: dict[str, Any] | None) -> Artifact:
    art = Artifact(project_id=id_of(project), kind=kind, path=rel, sha256=sha256, n_rows=n_rows, n_bytes=n_bytes,
                   meta=meta or {}, created_by=id_of(actor))
    session.add(art)
    session.flush()
    audit.record(session, actor=actor, action="artifact.register", entity="artifact", entity_id=art.id,
                 project_id=project.id, payload={"kind": kind, "path": art.path, "sha256": art.sha256,
                                                 "n_bytes": art.n_bytes})
    return art


def path_of(artifact: Artifact) -> Path:
    """The artifact as a file or directory on this machine: where it lies in the data directory, or (from a store
    elsewhere) a copy fetched into the data directory's cache, refused unless it has the recorded hash."""
    local = data_dir() / artifact.path
    store = artifact_store()
    if store.local or (local.exists() and _local_sha256(local) == artifact.sha256):
        return local
    verify(artifact, store=store)
    cached = data_dir() / "cache" / "artifacts" / artifact.sha256 / Path(artifact.path).name
    if not cached.exists():
        tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}")
        store.fs.get(store.key(artifact.path), str(tmp), recursive=store.fs.isdir(store.key(artifact.path)))
        if _local_sha256(tmp) != artifact.sha256:  # changed between the check and the copy
            raise _changed(artifact)
        os.replace(tmp, cached)
    return cached


def _local_sha256(path: Path) -> str:
    return dir_sha256(path) if path.is_dir() else file_sha256(path)


def _changed(artifact: Artifact) -> ArtifactTampered:
    return ArtifactTampered(f"Artifact #{artifact.id} ({artifact.kind}) was changed after it was recorded: "
                            "its SHA-256 no longer matches. Restore the original file.")


def problem(artifact: Artifact, *, store: ArtifactStore | None = None) -> str | None:
    """Why the artifact cannot be trusted (missing, or its bytes changed), or None when it has its hash."""
    store = store or artifact_store()
    if not store.exists(artifact.path):
        return f"Artifact #{artifact.id} ({artifact.kind}) is missing at {artifact.path}: restore it from backup."
    if store.sha256(artifact.path) != artifact.sha256:
        return str(_changed(artifact))
    return None


def verify(artifact: Artifact, *, store: ArtifactStore | None = None) -> None:
    """Raise unless the file still has the hash recorded when it was stored."""
    found = problem(artifact, store=store)
    if found is not None:
        raise ArtifactTampered(found)


def load_table(artifact: Artifact, *, check: bool = True) -> pd.DataFrame:
    """The table, parsed from the very bytes whose hash was checked (read once: nothing can swap the file
    between the check and the read)."""
    import pandas as pd

    store = artifact_store()
    if not store.exists(artifact.path):
        raise ArtifactTampered(problem(artifact, store=store) or f"Artifact #{artifact.id} is missing.")
    body = store.read_bytes(artifact.path)
    if check and hashlib.sha256(body).hexdigest() != artifact.sha256:
        raise _changed(artifact)
    return pd.read_parquet(io.BytesIO(body))
