"""A local teacher's model directory on any host: a run records its files (names, SHA-256, sizes) when it is
submitted and, where another host may run it, copies them to the artifact store under their hashes
(core.teacher.model_files, core.store.stored_dirs). The job, the evaluation that times the teacher and a student
that learns from its layers then use exactly those files, wherever they run.

"Host A" and "host B" are two data directories sharing one database and one artifact store (fsspec's memory
filesystem stands in for object storage); the model directory lies outside both, on the submitter's disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from fence_helpers import FIRST, RULES, SECOND, store_elsewhere  # noqa: F401  (store_elsewhere: the fixture "store")
from pydantic import ValidationError
from sqlmodel import Session, col, select
from teacher_helpers import make_dataset, routing, save_tiny_classifier

from core.domain.errors import ArtifactTampered, InvalidInput, RecordTampered
from core.store import jobs, stored_dirs, verification
from core.store.artifacts import data_dir, dir_sha256, load_table
from core.store.config import get_settings
from core.store.models import Artifact, AuditEvent, Job, TeacherRun
from core.store.stored_dirs import DirFile
from core.store.worker import claim_next
from core.teacher import model_files
from core.teacher import runs as teacher_runs
from core.teacher.config import LocalConfig
from core.training import runs as training_runs


def submit(session, demo, dataset, model_dir: Path) -> Job:
    return teacher_runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                                  adapter="local", config={"model_dir": str(model_dir), "batch_size": 8})


def run_by_worker(engine, job_id: int, worker: str) -> Job:
    jobs.hand_to_workers(job_id, engine=engine)
    claim = claim_next(engine, worker=worker, rules=RULES)
    assert claim is not None and claim.job_id == job_id
    return jobs.run(job_id, engine=engine, credential=claim.credential)


def submitted(session, demo, tmp_path) -> tuple[Job, Path]:
    """A local run of a freshly saved tiny classifier, submitted from the driver's disk (outside any data dir)."""
    model_dir = save_tiny_classifier(tmp_path / "laptop" / "model")
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session))
    return submit(session, demo, dataset, model_dir), model_dir


def failed_on_host_b(engine, job: Job, monkeypatch, tmp_path) -> Job:
    on_host(monkeypatch, tmp_path, "host-b")
    failed = run_by_worker(engine, job.id, SECOND)
    assert failed.status == "failed"
    return failed


def on_host(monkeypatch, tmp_path, name: str) -> Path:
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / name))
    get_settings.cache_clear()
    return tmp_path / name


def run_of(engine, job: Job) -> tuple[TeacherRun, pd.DataFrame]:
    with Session(engine) as s:
        run = s.get_one(TeacherRun, job.result["teacher_run"])
        return run, load_table(s.get_one(Artifact, run.artifact_id))


def files_of(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def recorded_file(job: Job, suffix: str) -> DirFile:
    return next(DirFile(**f) for f in job.params["config"]["model_files"] if f["name"].endswith(suffix))


def test_a_run_submitted_on_one_host_runs_on_another_after_its_directory_is_gone(engine, session, demo, store,
                                                                               monkeypatch, tmp_path):
    fs, root = store
    model_dir = save_tiny_classifier(tmp_path / "laptop" / "model")
    sha = dir_sha256(model_dir)
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session))
    on_a = run_by_worker(engine, submit(session, demo, dataset, model_dir).id, FIRST)
    assert on_a.status == "done", on_a.error
    again = submit(session, demo, dataset, model_dir)
    blobs = fs.find(f"{root}/{stored_dirs.BLOBS}")
    assert len(blobs) == len(files_of(model_dir))  # each file once, though two runs recorded the directory
    shutil.move(model_dir, tmp_path / "moved")
    host_b = on_host(monkeypatch, tmp_path, "host-b")
    on_b = run_by_worker(engine, again.id, SECOND)
    assert on_b.status == "done", on_b.error
    (run_a, out_a), (run_b, out_b) = run_of(engine, on_a), run_of(engine, on_b)
    pd.testing.assert_frame_equal(out_a[["id", "label", "confidence"]], out_b[["id", "label", "confidence"]])
    assert run_a.config["model_sha256"] == run_b.config["model_sha256"] == sha  # the manifest's hash is dir_sha256's
    assert run_b.config["model_dir"] == str(model_dir)  # the directory the driver chose, as recorded
    assert dir_sha256(host_b / stored_dirs.CACHE / sha) == sha
    with Session(engine) as s:
        audited = s.exec(select(AuditEvent).where(AuditEvent.action == "teacher.run")
                         .order_by(col(AuditEvent.id).desc())).first()
    assert audited is not None and sha in audited.payload and "model.safetensors" in audited.payload
    # A student that learns from the teacher's layers on host B reads the same files.
    assert training_runs.teacher_tokenizer_dir(run_b) == host_b / stored_dirs.CACHE / sha


def test_a_file_changed_in_the_store_fails_the_job_naming_it(engine, session, demo, store, monkeypatch, tmp_path):
    fs, root = store
    job, model_dir = submitted(session, demo, tmp_path)
    shutil.rmtree(model_dir)
    weights = recorded_file(job, ".safetensors")
    fs.pipe_file(f"{root}/{weights.blob}", b"other weights")
    failed = failed_on_host_b(engine, job, monkeypatch, tmp_path)
    assert f"file {weights.name} was changed in the artifact store" in failed.error
    assert "restore it from backup, or submit the run again" in failed.error
    assert not files_of(tmp_path / "host-b" / stored_dirs.CACHE)  # nothing unverified is kept
    with Session(engine) as s:
        assert not s.exec(select(TeacherRun)).all()


def test_a_file_missing_from_the_store_and_the_host_fails_the_job_naming_it(engine, session, demo, store,
                                                                            monkeypatch, tmp_path):
    fs, root = store
    job, model_dir = submitted(session, demo, tmp_path)
    shutil.rmtree(model_dir)
    config = recorded_file(job, "config.json")
    fs.rm(f"{root}/{config.blob}")
    failed = failed_on_host_b(engine, job, monkeypatch, tmp_path)
    assert f"file {config.name} (SHA-256 {config.sha256[:12]}…) is missing at {model_dir}" in failed.error
    assert "is not in the artifact store" in failed.error and "submit the run again" in failed.error


def test_with_the_default_store_nothing_is_copied_and_a_file_changed_before_the_run_fails_it(engine, session,
                                                                                          demo, tmp_path):
    job, model_dir = submitted(session, demo, tmp_path)
    assert job.params["config"]["model_sha256"] == dir_sha256(model_dir)
    assert not (data_dir() / stored_dirs.BLOBS).exists()  # one host: the files stay where the driver keeps them
    with (model_dir / "tokenizer_config.json").open("a") as f:
        f.write(" ")
    failed = jobs.run(job.id, engine=engine)
    assert failed.status == "failed"
    assert f"file tokenizer_config.json (SHA-256 {recorded_file(job, 'tokenizer_config.json').sha256[:12]}…) was " \
           f"changed at {model_dir} and is not in the artifact store" in failed.error


def test_with_workers_and_the_default_store_a_directory_outside_the_data_directory_is_copied_into_it(
        monkeypatch, tmp_path):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")
    on_host(monkeypatch, tmp_path, "host-a")
    outside = save_tiny_classifier(tmp_path / "laptop" / "model")
    inside = save_tiny_classifier(data_dir() / "models" / "teacher")  # a data directory the workers share
    assert model_files.snapshot(inside).get(stored_dirs.STORED) is None
    assert not (data_dir() / stored_dirs.BLOBS).exists()
    assert model_files.snapshot(outside)[stored_dirs.STORED] is True
    assert len(files_of(data_dir() / stored_dirs.BLOBS)) == len(files_of(outside))


def test_a_file_added_beside_the_recorded_ones_is_left_out_of_the_run(engine, session, demo, tmp_path):
    job, model_dir = submitted(session, demo, tmp_path)
    (model_dir / "added_tokens.json").write_text('{"[NEW]": 999}')
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    used = data_dir() / stored_dirs.CACHE / job.params["config"]["model_sha256"]
    assert sorted(p.name for p in files_of(used)) == sorted(f["name"] for f in job.params["config"]["model_files"])


def test_the_teacher_an_evaluation_runs_is_the_recorded_one_though_the_directory_changed(engine, session, demo,
                                                                                       store, tmp_path):
    job, model_dir = submitted(session, demo, tmp_path)
    done = run_by_worker(engine, job.id, FIRST)
    run, _ = run_of(engine, done)
    shutil.rmtree(model_dir)
    save_tiny_classifier(model_dir)  # another model, same labels, same place
    used = model_files.of_run(run)
    assert dir_sha256(used) == run.config["model_sha256"] != dir_sha256(model_dir)


def test_without_a_copy_a_changed_directory_is_refused_to_the_evaluation(engine, session, demo, tmp_path):
    job, model_dir = submitted(session, demo, tmp_path)
    done = jobs.run(job.id, engine=engine)
    run, _ = run_of(engine, done)
    (model_dir / "config.json").write_text((model_dir / "config.json").read_text().replace("billing", "refunds"))
    with pytest.raises(ArtifactTampered, match=rf"teacher run #{run.id}'s model directory: file config.json"):
        model_files.of_run(run)


def test_audit_verify_names_a_teacher_file_changed_or_missing_in_the_store(engine, session, demo, store, tmp_path):
    fs, root = store
    job, model_dir = submitted(session, demo, tmp_path)
    done = run_by_worker(engine, job.id, FIRST)
    run, _ = run_of(engine, done)
    assert run.config[stored_dirs.STORED] is True and not teacher_problems(engine)
    weights, config = recorded_file(job, ".safetensors"), recorded_file(job, "config.json")
    fs.pipe_file(f"{root}/{weights.blob}", b"other weights")
    fs.rm(f"{root}/{config.blob}")
    assert teacher_problems(engine) == [
        f"teacher run #{run.id} (job #{job.id})'s model file {config.name} is missing from the artifact store "
        f"({config.blob}): restore it from backup, or run the teacher again from a host that has the directory.",
        f"teacher run #{run.id} (job #{job.id})'s model file {weights.name} was changed in the artifact store "
        f"({weights.blob}): restore it from backup, or run the teacher again from a host that has the directory."]


def teacher_problems(engine) -> list[str]:
    return [p for p in verification.verify(engine).problems if "model file" in p]


def test_a_directory_over_the_limit_is_refused_at_submit_and_nothing_is_queued_or_stored(engine, session, demo,
                                                                                        store, monkeypatch,
                                                                                        tmp_path):
    fs, root = store
    model_dir = save_tiny_classifier(tmp_path / "laptop" / "model")
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session))
    monkeypatch.setenv("STILLROOM_TEACHER_DIR_MAX_GB", "0.0001")  # about 100 KiB
    get_settings.cache_clear()
    with pytest.raises(InvalidInput, match="STILLROOM_TEACHER_DIR_MAX_GB") as refused:
        submit(session, demo, dataset, model_dir)
    assert refused.value.field == "model_dir"
    assert not session.exec(select(Job)).all() and not fs.exists(f"{root}/{stored_dirs.BLOBS}")


def test_a_record_whose_files_do_not_give_its_hash_is_refused(monkeypatch, tmp_path):
    on_host(monkeypatch, tmp_path, "host-a")
    model_dir = save_tiny_classifier(tmp_path / "model")
    files = model_files.snapshot(model_dir)["model_files"]
    forged = LocalConfig(model_dir=str(model_dir), model_files=files, model_sha256="0" * 64)
    with pytest.raises(RecordTampered, match="no longer gives its recorded SHA-256"):
        model_files.dir_here(forged, what="the teacher's model directory")


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/../../b", "a\\..\\b", "./x", "a//b"])
def test_a_recorded_file_name_cannot_point_outside_its_directory(name):
    with pytest.raises(ValidationError, match="relative path inside the directory"):
        DirFile(name=name, sha256="a" * 64, size=1)
