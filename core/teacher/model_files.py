"""A local teacher's model directory as a run records it, so that the run, the evaluation that times the teacher
and a student that learns from its layers all use exactly the files the driver submitted, on any host.

When a local run is submitted, its directory's files are listed with their SHA-256 and sizes (the manifest,
kept in the run's settings and audited with them; its hash is the run's ``model_sha256``). Where another host
may run the job (``copied``) the files are also copied to the store under their hashes (core.store.stored_dirs).
Wherever the directory is needed later, ``dir_here`` gives the recorded path when it still holds exactly those
files, else a checked copy from the store; a file changed or missing in both is refused, naming it. Runs
recorded before their files were use their path as they always did.
"""

from __future__ import annotations

from pathlib import Path

from core.domain.errors import RecordTampered
from core.store import stored_dirs
from core.store.artifacts import artifact_store, data_dir
from core.store.config import get_settings
from core.store.models import TeacherRun
from core.store.stored_dirs import DirManifest
from core.teacher.config import LocalConfig, read_config

MAX_FILES = 1_000  # a saved model holds a handful; the manifest is audited with the run, so it stays small


def resolve_path(value: str) -> Path:
    """A recorded model directory on this machine (a relative one lies under the data directory)."""
    path = Path(value)
    return path if path.is_absolute() else data_dir() / path


def copied(path: Path) -> bool:
    """Whether a run of the directory at ``path`` copies its files to the store: when the store is not this
    machine's data directory, and when workers run the jobs and the directory lies outside the data directory (a
    data directory the workers share already holds one inside it)."""
    if not artifact_store().local:
        return True
    return get_settings().job_runner == "workers" and not path.resolve().is_relative_to(data_dir())


def snapshot(path: Path) -> dict:
    """What a local run records of its directory when it is submitted: its files and their hash (the files copied
    to the store where another host may run the job). InvalidInput naming model_dir when it is over a limit."""
    limit = int(get_settings().teacher_dir_max_gb * 2**30)
    manifest = stored_dirs.manifest_of(path, max_files=MAX_FILES, max_bytes=limit, field="model_dir")
    stored = copied(path)
    if stored:
        stored_dirs.put(manifest, path)
    return {stored_dirs.FILES: [f.model_dump() for f in manifest.files], "model_sha256": manifest.sha256,
            **({stored_dirs.STORED: True} if stored else {})}


def dir_here(config: LocalConfig, *, what: str) -> Path:
    """The run's model directory on this machine, holding exactly the files it recorded (ArtifactTampered naming
    a changed or missing file and the fix; RecordTampered when the recorded files and hash disagree)."""
    recorded = resolve_path(config.model_dir)
    if config.model_files is None:  # recorded before runs recorded their files
        return recorded
    manifest = DirManifest(files=tuple(config.model_files))
    if config.model_sha256 != manifest.sha256:
        raise RecordTampered(f"{what}: the recorded list of its files no longer gives its recorded SHA-256 "
                             f"({(config.model_sha256 or '')[:12]}…); it was changed outside Stillroom. Run the "
                             "teacher again.")
    return stored_dirs.here(manifest, recorded=recorded, what=what)


def of_run(teacher_run: TeacherRun) -> Path:
    """A local teacher run's model directory on this machine, as ``dir_here`` gives it."""
    config = read_config(teacher_run)
    assert isinstance(config, LocalConfig), f"teacher run #{teacher_run.id} is not a local teacher's"
    return dir_here(config, what=f"teacher run #{teacher_run.id}'s model directory")


def has_tokenizer(teacher_run: TeacherRun) -> bool | None:
    """Whether a local run's recorded files include a tokenizer (None: it recorded no files), read from its record
    alone: nothing is fetched."""
    config = read_config(teacher_run)
    if not isinstance(config, LocalConfig) or config.model_files is None:
        return None
    return any(f.name in ("tokenizer.json", "tokenizer_config.json") for f in config.model_files)

