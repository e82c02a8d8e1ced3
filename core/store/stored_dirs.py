"""A directory a run names (a local teacher's model, say) held in the artifact store file by file, under each
file's SHA-256, so that a job on another host runs on exactly the files the run recorded.

A ``DirManifest`` lists the directory's files (relative name, SHA-256, size); its own hash is the one
``artifacts.dir_sha256`` takes of the directory, so a run's recorded model hash and its manifest vouch for each
other. ``put`` copies each file to ``artifacts/by-sha256/`` in the store unless a file with that hash is already
there (identical files, and so identical directories, are stored once). ``here`` gives a directory on this
machine that holds exactly the manifest's files: the recorded path when it still does, else a copy fetched from
the store into the data directory's cache, every file checked against its hash; a changed or missing file is
refused in one sentence naming it and the fix. Stored files are never removed: another manifest may name them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.domain.errors import ArtifactTampered, InvalidInput
from core.store.artifacts import ArtifactStore, artifact_store, data_dir, file_sha256
from core.store.models import TeacherRun

BLOBS = "artifacts/by-sha256"  # in the store: one file per distinct content, named by its SHA-256
CACHE = "cache/dirs"  # in the data directory: fetched directories, one per manifest hash
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
            continue  # the same content, stored for this or another directory
        store.put_file(Path(path) / f.name, f.blob)
        copied += 1
    return copied


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
