"""A directory a run names (a local teacher's model, say) held in the artifact store file by file, under each
file's SHA-256, so that a job on another host runs on exactly the files the run recorded.

A ``DirManifest`` lists the directory's files (relative name, SHA-256, size); its own hash is the one
``artifacts.dir_sha256`` takes of the directory, so a run's recorded model hash and its manifest vouch for each
other. ``put`` copies each file to ``artifacts/by-sha256/`` in the store unless a file with that hash is already
there (identical files, and so identical directories, are stored once). ``here`` gives a directory on this
machine that holds exactly the manifest's files: the recorded path when it still does, else a copy fetched from
the store into the data directory's cache, every file checked against its hash; a changed or missing file is
refused in one sentence naming it and the fix. A stored file is removed only by ``sweep`` (admins), and only when
no run or job records it; a host's cached copies are pruned by ``prune_cache`` once unused for a while, never one
a process of the host is using.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.domain.errors import ArtifactTampered, InvalidInput
from core.store import audit, sweeping
from core.store.artifacts import ArtifactStore, artifact_store, data_dir, file_sha256
from core.store.config import get_settings
from core.store.models import Job, TeacherRun, User, utcnow
from core.store.sweeping import Swept

_log = logging.getLogger(__name__)

BLOBS = "artifacts/by-sha256"  # in the store: one file per distinct content, named by its SHA-256
CACHE = "cache/dirs"  # in the data directory: fetched directories, one per manifest hash
LOCKS = "cache/dir-locks"  # in the data directory: one lock file per cached copy a process of the host uses
# A local teacher run's settings record its directory's files under FILES and, when they were copied to the
# store, STORED: true (core.teacher.model_files writes them; ``teacher_copy_problems`` checks the copies).
FILES, STORED = "model_files", "model_stored"


class DirFile(BaseModel):
    """One file of a recorded directory: its name relative to the directory, its SHA-256 and its size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _inside(cls, name: str) -> str:
        # A record changed outside Stillroom must not write or read outside the directory it is fetched into.
        parts = PurePosixPath(name).parts
        if (name.startswith("/") or "\\" in name or PurePosixPath(name).as_posix() != name
                or any(p in ("", ".", "..") for p in parts)):
            raise ValueError(f"file name {name!r} must be a relative path inside the directory")
        return name

    @property
    def blob(self) -> str:
        """Where this content lies in the store."""
        return f"{BLOBS}/{self.sha256[:2]}/{self.sha256}"


class DirManifest(BaseModel):
    """A directory's files, in ``dir_sha256``'s order."""

    model_config = ConfigDict(frozen=True)

    files: tuple[DirFile, ...]

    @property
    def sha256(self) -> str:
        """The directory's hash as ``artifacts.dir_sha256`` takes it (names and file hashes, in its order)."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: PurePosixPath(f.name)):
            h.update(f.name.encode())
            h.update(f.sha256.encode())
        return h.hexdigest()

    @property
    def n_bytes(self) -> int:
        return sum(f.size for f in self.files)


def manifest_of(path: Path, *, max_files: int, max_bytes: int, field: str) -> DirManifest:
    """The directory's manifest; InvalidInput naming ``field`` when it is empty or over a limit (checked from
    the files' sizes before any is read)."""
    found = sorted(p for p in Path(path).rglob("*") if p.is_file())
    if not found:
        raise InvalidInput(f"{path} holds no files: give the folder the model was saved to.", field=field)
    if len(found) > max_files:
        raise InvalidInput(f"{path} holds {len(found):,} files, more than the {max_files:,} a recorded directory "
                           "may hold: give the folder the model alone was saved to.", field=field)
    total = sum(p.stat().st_size for p in found)
    if total > max_bytes:
        raise InvalidInput(f"{path} holds {total / 2**30:.1f} GiB, more than the {max_bytes / 2**30:.1f} GiB a "
                           "recorded model directory may (STILLROOM_TEACHER_DIR_MAX_GB): give a smaller model, or "
                           "ask the admin to raise the limit.", field=field)
    return DirManifest(files=tuple(DirFile(name=p.relative_to(path).as_posix(), sha256=file_sha256(p),
                                           size=p.stat().st_size) for p in found))


def put(manifest: DirManifest, path: Path) -> int:
    """Copy the directory's files the store does not hold yet (by hash); returns how many it copied."""
    store = artifact_store()
    copied = 0
    for f in manifest.files:
        if store.exists(f.blob) and _size(store, f.blob) == f.size:
            _refresh(store, f.blob)  # the same content, stored for this or another directory: not swept meanwhile
            continue
        store.put_file(Path(path) / f.name, f.blob)
        copied += 1
    return copied


def _refresh(store: ArtifactStore, rel: str) -> None:
    """Mark a stored file written now, where the store allows it, so that a sweep running while this submit records
    it does not take it for an orphan past its grace (a store that cannot leaves that moment open: the job then
    fails naming the file, and submitting again copies it back)."""
    key = store.key(rel)
    try:
        if store.fs is None:
            os.utime(key)
        else:
            store.fs.touch(key, truncate=False)
    except (NotImplementedError, ValueError, OSError):
        pass


def _size(store: ArtifactStore, rel: str) -> int:
    key = store.key(rel)
    return Path(key).stat().st_size if store.local else int(store.fs.size(key))


def here(manifest: DirManifest, *, recorded: Path, what: str) -> Path:
    """A directory on this machine holding exactly the manifest's files: ``recorded`` when it does, else the
    cache's copy (fetched from the store if need be, every file checked). ``what`` names the directory in the
    sentence of ArtifactTampered when neither can be had."""
    if _differs(recorded, manifest) is None:
        return recorded
    cached = data_dir() / CACHE / manifest.sha256
    _use(cached)  # before it is checked: from here until this process ends, no prune removes it
    if cached.is_dir() and _differs(cached, manifest) is None:
        return cached
    tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}")
    try:
        _fetch(manifest, tmp, recorded=recorded, what=what)
        shutil.rmtree(cached, ignore_errors=True)  # a copy changed on this machine is replaced
        os.replace(tmp, cached)
    except OSError:  # another job of this host put the same copy there meanwhile
        if not (cached.is_dir() and _differs(cached, manifest) is None):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pruned = prune_cache(days=get_settings().dir_cache_days)  # the cache grows only here, so it shrinks here
    if pruned:
        _log.info("Removed %d cached model director(ies) unused for %g days: %s", len(pruned),
                  get_settings().dir_cache_days, ", ".join(pruned))
    return cached


def _fetch(manifest: DirManifest, out: Path, *, recorded: Path, what: str) -> None:
    """Each file from the recorded directory where it still has its hash there, else from the store; each copy
    checked against its hash."""
    store = artifact_store()
    for f in manifest.files:
        target = out / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        departs = _differs(recorded, DirManifest(files=(f,)), whole=False)
        if departs is None:
            shutil.copyfile(recorded / f.name, target)
            source = f"at {recorded}"
        elif store.exists(f.blob):
            store.get_file(f.blob, target)
            source = f"in the artifact store ({f.blob})"
        else:
            raise ArtifactTampered(
                f"{what}: file {f.name} (SHA-256 {f.sha256[:12]}…) {departs} at {recorded} and is not in the "
                f"artifact store ({f.blob}): put back the directory the run was recorded with, or submit the run "
                "again.")
        if file_sha256(target) != f.sha256:
            raise ArtifactTampered(
                f"{what}: file {f.name} was changed {source} (SHA-256 recorded {f.sha256[:12]}…): restore it from "
                "backup, or submit the run again from a host that has the directory.")


def _differs(path: Path, manifest: DirManifest, *, whole: bool = True) -> str | None:
    """How ``path`` departs from the manifest ("is missing", "was changed", "holds X, which the run did not
    record"), or None when it holds exactly its files (``whole``: and no other)."""
    if not path.is_dir():
        return "is missing"
    for f in manifest.files:
        file = path / f.name
        if not file.is_file():
            return "is missing"
        if file.stat().st_size != f.size or file_sha256(file) != f.sha256:
            return "was changed"
    if whole:
        extra = _extra(path, (f.name for f in manifest.files))
        if extra:
            return f"holds {extra}, which the run did not record"
    return None


def _extra(path: Path, names: Iterable[str]) -> str | None:
    known = set(names)
    return next((n for n in sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
                 if n not in known), None)


def teacher_copy_problems(engine: Engine) -> list[str]:
    """Every file of a local teacher run's directory copied to the store that is missing there or whose bytes no
    longer have the recorded SHA-256, naming the run, its job and the file (part of ``stillroom audit verify``)."""
    with Session(engine) as s:
        rows = s.exec(select(col(TeacherRun.id), col(TeacherRun.job_id), col(TeacherRun.config))
                      .where(col(TeacherRun.adapter) == "local").order_by(col(TeacherRun.id))).all()
    store = artifact_store()
    hashed: dict[str, str | None] = {}
    out: list[str] = []
    for run_id, job_id, config in rows:
        if not (config or {}).get(STORED):
            continue
        who = f"teacher run #{run_id}" + (f" (job #{job_id})" if job_id is not None else "")
        try:
            manifest = DirManifest(files=(config or {}).get(FILES) or ())
        except ValidationError:
            out.append(f"{who}'s record of its model directory's files ({FILES!r} in its settings) no longer "
                       "fits {name, sha256, size}: it was changed; run the teacher again.")
            continue
        for f in manifest.files:
            if f.blob not in hashed:  # a file shared by several runs is read once
                hashed[f.blob] = store.sha256(f.blob) if store.exists(f.blob) else None
            if hashed[f.blob] != f.sha256:
                what = "is missing from" if hashed[f.blob] is None else "was changed in"
                out.append(f"{who}'s model file {f.name} {what} the artifact store ({f.blob}): restore it from "
                           "backup, or run the teacher again from a host that has the directory.")
    return out


# --------------------------------------------------------------------------- this host's cached copies

_HELD: dict[Path, int] = {}  # the cached copies this process uses: a shared lock on each, held until it exits


def _lock_of(cached: Path) -> Path:
    """Its lock file, kept beside the cache (so the cache holds the copies alone): its time is the copy's last use."""
    return data_dir() / LOCKS / f"{cached.name}.lock"


def _use(cached: Path) -> None:
    """Hold a shared lock on the cached copy until this process ends (a job runs in a process of its own, so while
    it runs no prune takes the copy it uses) and mark it used now (its lock file's time)."""
    lock = _lock_of(cached)
    if lock not in _HELD:
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a prune removes this very copy
            try:
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the prune removed the lock file we waited on: lock the one there now
        _HELD[lock] = fd
    os.utime(lock)


def prune_cache(*, days: float, now: float | None = None) -> list[str]:
    """Remove this host's cached copies (and copies a killed fetch left half made) unused for more than ``days``,
    but none a process of this host holds (``_use``); returns their names. The store keeps every recorded file, so
    a copy pruned here is fetched again when next needed."""
    cutoff = (time.time() if now is None else now) - days * 86400
    copies, locks = data_dir() / CACHE, data_dir() / LOCKS
    names = {p.name for p in copies.iterdir() if p.is_dir()} if copies.is_dir() else set()
    names |= {p.name.removesuffix(".lock") for p in locks.glob("*.lock")} if locks.is_dir() else set()
    removed = []
    for name in sorted(names):
        copy, lock = copies / name, locks / f"{name}.lock"
        if (lock if lock.exists() else copy).stat().st_mtime > cutoff:
            continue
        had_copy = copy.exists()  # a lock file alone: a fetch that failed, or a copy removed by hand
        if _remove_unheld(copy, lock) and had_copy:
            removed.append(name)
    return removed


def _remove_unheld(copy: Path, lock: Path) -> bool:
    """Remove the copy and its lock file unless a process holds it; whether they were removed."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False  # a job of this host uses it
    try:
        shutil.rmtree(copy, ignore_errors=True)
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


# --------------------------------------------------------------------------- stored files no run records

SWEPT = "stored model file(s) that no teacher run or job records"


def sweep(session: Session, *, actor: User, grace: timedelta, now: datetime | None = None) -> Swept:
    """Remove the files under ``BLOBS`` in the store that no local teacher run's and no job's recorded manifest
    names (any status), written more than ``grace`` ago (admins; one audit event when any was removed). A submit
    that failed after copying left them. When a record no longer reads, nothing is removed: its files are unknown."""
    sweeping.may_sweep(actor, grace=grace, what="stored model files")
    store = artifact_store()
    named, unread = _named(session)
    unrecorded = [rel for rel in _stored(store) if rel.rsplit("/", 1)[1] not in named]
    if unread:
        return Swept(SWEPT, left=len(unrecorded),
                     why_left=f"{unread} record(s) of model files no longer read: every file is kept")
    before = (now or utcnow()) - grace
    removed = [rel for rel in unrecorded if sweeping.stale(store, rel, before=before)]
    for rel in removed:
        store.remove(rel)
    if removed:
        audit.record(session, actor=actor, action="teacher.files_swept", entity="artifact_store",
                     entity_id=BLOBS, payload={"removed": [rel.rsplit("/", 1)[1] for rel in removed]})
        session.commit()
    return Swept(SWEPT, removed, len(unrecorded) - len(removed))


def _named(session: Session) -> tuple[set[str], int]:
    """(the hashes of every file a run or a job records, how many records no longer read). Jobs count too: a
    queued job's run is recorded only when it runs."""
    configs = [*session.exec(select(col(TeacherRun.config))).all(),
               *((params or {}).get("config") for params in session.exec(select(col(Job.params))).all())]
    named: set[str] = set()
    unread = 0
    for config in configs:
        if config is None:  # a job of another kind
            continue
        try:
            files = config.get(FILES)
            if files is not None:
                named.update(f.sha256 for f in DirManifest(files=files).files)
        except (AttributeError, ValidationError):  # changed outside Stillroom: which files it names is unknown
            unread += 1
    return named, unread


def _stored(store: ArtifactStore) -> list[str]:
    """Every file under ``BLOBS`` (an upload cut short included), as store names."""
    key = store.key(BLOBS)
    if store.fs is None:
        return sorted(f"{BLOBS}/{p.relative_to(key).as_posix()}" for p in Path(key).rglob("*") if p.is_file())
    if not store.fs.exists(key):
        return []
    return sorted(f"{BLOBS}/{str(k)[len(key.rstrip('/')) + 1:]}" for k in store.fs.find(key))
