"""Removing what a local teacher's model directory left that nothing records (core.store.stored_dirs): the
store's files no run or job names, past a grace (`stillroom jobs sweep-teacher-files`, admins, audited), and a
host's cached copies unused for days, never one a process of the host uses.

A failed submit is simulated by a submit whose queueing fails after its files were copied to the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fence_helpers import store_elsewhere  # noqa: F401  (the fixture "store": an artifact store elsewhere)
from sqlmodel import Session, select
from teacher_helpers import make_dataset, routing, save_tiny_classifier
from test_teacher_model_files import on_host, submit

from core.cli import cli
from core.domain.errors import PermissionDenied
from core.store import stored_dirs, sweeping
from core.store.artifacts import artifact_store, data_dir
from core.store.models import AuditEvent, Job, utcnow
from core.store.stored_dirs import DirManifest
from core.teacher import model_files
from core.teacher import runs as teacher_runs

LATER = timedelta(hours=2)


def hashes(job: Job) -> set[str]:
    return {f["sha256"] for f in job.params["config"]["model_files"]}


def stored(fs, root: str) -> set[str]:
    key = f"{root}/{stored_dirs.BLOBS}"
    return {k.rsplit("/", 1)[1] for k in fs.find(key)} if fs.exists(key) else set()


def recorded_and_orphaned(session, demo, tmp_path, monkeypatch) -> tuple[Job, set[str]]:
    """A queued run of one model, then a submit of another (same tokenizer, other labels) that failed after its
    files were copied; (the queued job, the hashes of the files only the failed submit copied)."""
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session))
    job = submit(session, demo, dataset, save_tiny_classifier(tmp_path / "laptop" / "a"))
    other = save_tiny_classifier(tmp_path / "laptop" / "b", labels=["yes", "no"])
    other_files = {stored_dirs.file_sha256(p) for p in other.rglob("*") if p.is_file()}
    with monkeypatch.context() as m:
        m.setattr(teacher_runs.jobs, "submit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("database gone")))
        with pytest.raises(RuntimeError):
            submit(session, demo, dataset, other)
    assert other_files & hashes(job), "the two models share no file: the test proves less than it says"
    return job, other_files - hashes(job)


def test_a_file_a_queued_run_names_survives_and_an_orphan_past_its_grace_is_removed(engine, session, demo, store,
                                                                                   monkeypatch, tmp_path):
    fs, root = store
    job, orphans = recorded_and_orphaned(session, demo, tmp_path, monkeypatch)
    assert orphans and stored(fs, root) == hashes(job) | orphans
    young = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(hours=1))
    assert (young.removed, young.left) == ([], len(orphans))  # written within the grace: a submit may record them
    with pytest.raises(PermissionDenied, match="Only an admin sweeps"):
        stored_dirs.sweep(session, actor=demo["dana"], grace=timedelta(0), now=utcnow() + LATER)
    assert stored(fs, root) == hashes(job) | orphans
    swept = CliRunner().invoke(cli, ["--as", "admin", "jobs", "sweep-teacher-files", "--grace-hours", "0"])
    assert swept.exit_code == 0, swept.output
    lines = swept.output.splitlines()
    assert lines[0] == f"Removed {len(orphans)} stored model file(s) that no teacher run or job records."
    assert {line.rsplit("/", 1)[1] for line in lines[1:1 + len(orphans)]} == orphans
    assert stored(fs, root) == hashes(job)  # every file the queued run names, the shared ones included
    again = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(0), now=utcnow() + LATER)
    assert (again.removed, again.left) == ([], 0)
    with Session(engine) as s:
        (event,) = s.exec(select(AuditEvent).where(AuditEvent.action == "teacher.files_swept")).all()
    assert (event.actor, set(json.loads(event.payload)["removed"])) == ("admin", orphans)
    assert stored_dirs.teacher_copy_problems(engine) == []


def test_a_store_that_cannot_say_when_a_file_was_written_sweeps_nothing(session, demo, store, monkeypatch,
                                                                       tmp_path):
    fs, root = store
    job, orphans = recorded_and_orphaned(session, demo, tmp_path, monkeypatch)

    def unknown(path):
        raise NotImplementedError

    monkeypatch.setattr(fs, "modified", unknown)
    swept = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(0), now=utcnow() + LATER)
    assert (swept.removed, swept.left) == ([], len(orphans))
    assert stored(fs, root) == hashes(job) | orphans


def test_a_record_that_no_longer_reads_keeps_every_file(engine, session, demo, store, monkeypatch, tmp_path):
    fs, root = store
    job, orphans = recorded_and_orphaned(session, demo, tmp_path, monkeypatch)
    with Session(engine) as s:
        row = s.get_one(Job, job.id)
        row.params = {**row.params, "config": {**row.params["config"], "model_files": [{"name": "x"}]}}
        s.add(row)
        s.commit()
    swept = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(0), now=utcnow() + LATER)
    assert swept.removed == [] and "1 record(s) of model files no longer read" in swept.sentence()
    assert stored(fs, root) == hashes(job) | orphans


def test_with_the_default_store_an_orphan_past_its_grace_is_removed_by_its_file_time(session, demo, monkeypatch,
                                                                                    tmp_path):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")  # a directory outside the data directory is copied in
    on_host(monkeypatch, tmp_path, "host-a")
    job, orphans = recorded_and_orphaned(session, demo, tmp_path, monkeypatch)
    blobs = data_dir() / stored_dirs.BLOBS
    young = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(hours=1))
    assert (young.removed, young.left) == ([], len(orphans))
    swept = stored_dirs.sweep(session, actor=demo["admin"], grace=timedelta(hours=1), now=utcnow() + LATER)
    assert {rel.rsplit("/", 1)[1] for rel in swept.removed} == orphans
    assert {p.name for p in blobs.rglob("*") if p.is_file()} == hashes(job)


# --------------------------------------------------------------------------- a host's cached copies


def cached_on_host_b(job: Job, monkeypatch, tmp_path) -> Path:
    """The queued run's directory as host B has it (the driver's directory gone): a cached copy this process uses."""
    on_host(monkeypatch, tmp_path, "host-b")
    manifest = DirManifest(files=tuple(job.params["config"]["model_files"]))
    return stored_dirs.here(manifest, recorded=tmp_path / "gone", what="the test's directory")


def stale_copy(name: str, days: float) -> Path:
    copy = data_dir() / stored_dirs.CACHE / name
    (copy / "sub").mkdir(parents=True)
    (copy / "sub" / "weights.bin").write_bytes(b"x" * 10)
    old = time.time() - days * 86400
    os.utime(copy, (old, old))
    return copy


def age(path: Path, days: float) -> None:
    old = time.time() - days * 86400
    os.utime(path, (old, old))


def test_a_new_cached_copy_prunes_the_stale_ones_and_keeps_the_one_in_use(session, demo, store, monkeypatch,
                                                                         tmp_path):
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session))
    job = submit(session, demo, dataset, save_tiny_classifier(tmp_path / "laptop" / "a"))
    on_host(monkeypatch, tmp_path, "host-b")
    stale, fresh = stale_copy("f" * 64, days=30), stale_copy("e" * 64, days=1)
    in_use = cached_on_host_b(job, monkeypatch, tmp_path)  # a new copy: the cache is pruned
    assert in_use.parent == stale.parent and in_use.is_dir()
    assert not stale.exists() and fresh.is_dir()  # unused for 30 days, then 1 day (7 by default)
    age(data_dir() / stored_dirs.LOCKS / f"{in_use.name}.lock", days=30)  # used long ago, but held here
    another = stale_copy("d" * 64, days=30)
    pruned = CliRunner().invoke(cli, ["--as", "admin", "jobs", "sweep-teacher-files", "--cache-days", "7"])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.splitlines()[-2:] == [
        "Removed 1 cached model director(ies) on this host unused for 7 days.",
        f"- {stored_dirs.CACHE}/{another.name}"]
    assert in_use.is_dir() and fresh.is_dir() and not another.exists()


def test_a_copy_another_process_of_the_host_uses_is_kept_until_it_ends(monkeypatch, tmp_path):
    host = on_host(monkeypatch, tmp_path, "host-b")
    copy = stale_copy("c" * 64, days=30)
    user = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from core.store import stored_dirs; "
         "stored_dirs._use(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()", str(copy)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "STILLROOM_DATA_DIR": str(host)},
        cwd=Path(__file__).parents[2])
    try:
        assert user.stdout is not None and user.stdout.readline() == b"held\n"
        age(host / stored_dirs.LOCKS / f"{copy.name}.lock", days=30)
        assert stored_dirs.prune_cache(days=7) == [] and copy.is_dir()  # its job is still running
    finally:
        user.communicate(timeout=60)
    assert stored_dirs.prune_cache(days=7) == [copy.name] and not copy.exists()
    assert not (host / stored_dirs.LOCKS / f"{copy.name}.lock").exists()


def test_a_submit_that_reuses_an_old_orphan_file_keeps_it_from_a_sweep_before_it_records_it(monkeypatch, tmp_path):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")
    on_host(monkeypatch, tmp_path, "host-a")
    model = save_tiny_classifier(tmp_path / "laptop" / "a")
    model_files.snapshot(model)  # copied, then the submit failed: orphans
    blobs = stored_dirs._stored(artifact_store())
    for rel in blobs:
        age(data_dir() / rel, days=1)
    grace_ago = utcnow() - timedelta(hours=1)
    assert all(sweeping.stale(artifact_store(), rel, before=grace_ago) for rel in blobs)
    model_files.snapshot(model)  # a new submit finds them stored: it copies none, and has not recorded them yet
    assert not any(sweeping.stale(artifact_store(), rel, before=grace_ago) for rel in blobs)
