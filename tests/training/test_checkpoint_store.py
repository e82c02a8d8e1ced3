"""Issue 20: with an artifact store that is not the data directory, a training job taken over on another host
resumes from the checkpoint its first worker recorded (core.training.checkpoints), checked against its SHA-256.

fsspec's memory filesystem stands in for object storage; "another host" is a second, empty data directory. The
first worker's host dies right after it recorded epoch 3 (its process ends mid-job, as on a lost host)."""

from __future__ import annotations

import uuid

import fence_helpers as fh
import fsspec
import pytest
from eval_helpers import FAST, easy_gate, teacher_run_with_holdout
from sqlmodel import Session, col, select

from core.access import projects
from core.gate import gate
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job, TrainingPoint, TrainingRun
from core.store.worker import claim_next
from core.training import checkpoints
from core.training import runs as training_runs

DIES_AFTER = 3


class HostDied(BaseException):
    """The first worker's host went away: nothing of the job's process runs after it."""


@pytest.fixture
def store(monkeypatch, tmp_path):
    url = f"memory://team-{uuid.uuid4().hex[:8]}/stillroom"
    monkeypatch.setenv("STILLROOM_ARTIFACT_STORE", url)
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / "host-a"))
    get_settings.cache_clear()
    fs, root = fsspec.core.url_to_fs(url)
    yield fs, root
    fs.rm(root, recursive=True)
    get_settings.cache_clear()


def first_host_dies(session, engine, demo, tmp_path) -> tuple[int, int]:
    """A training job whose first worker records epoch DIES_AFTER and dies; (job id, run id)."""
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config={**FAST, "patience": 40})
    jobs.hand_to_workers(job.id, engine=engine)
    first = claim_next(engine, worker=fh.FIRST, rules=fh.RULES)

    def dies(_fraction: float, message: str) -> None:
        if message.startswith(f"epoch {DIES_AFTER}/") and "val loss" in message:  # recorded, then gone
            raise HostDied

    with pytest.raises(HostDied):
        jobs.run(job.id, engine=engine, on_progress=dies, credential=first.credential)
    fh.go_quiet(engine, job.id)
    return job.id, run.id


def on_another_host(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / "host-b"))
    get_settings.cache_clear()


def take_over(engine, job_id: int) -> Job:
    second = claim_next(engine, worker=fh.SECOND, rules=fh.RULES)
    assert second is not None and second.took_over_from == fh.FIRST
    return jobs.run(job_id, engine=engine, credential=second.credential)


def resumed_after(engine, run_id: int) -> list[int]:
    with Session(engine) as s:
        return [e.payload for e in s.exec(select(AuditEvent).where(
            AuditEvent.action == "training.start", AuditEvent.entity_id == str(run_id)).order_by(col(AuditEvent.id)))]


def test_a_run_taken_over_on_another_host_resumes_from_the_checkpoint_in_the_store(engine, session, demo, store,
                                                                                   monkeypatch, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    with Session(engine) as s:
        recorded = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]
    assert recorded["last"]["epoch"] == DIES_AFTER
    for kept in recorded.values():  # in the store, under a name carrying its hash
        assert fs.exists(f"{root}/{kept['path']}") and kept["sha256"][:16] in kept["path"]
    assert len(fs.ls(f"{root}/{recursive_parent(recorded)}")) == len({k["path"] for k in recorded.values()})
    on_another_host(monkeypatch, tmp_path)
    done = take_over(engine, job_id)
    assert done.status == "done", done.error
    starts = resumed_after(engine, run_id)
    assert [f'"resumed_after_epoch":{n}' in p for p, n in zip(starts, (0, DIES_AFTER), strict=True)] == [True, True]
    with Session(engine) as s:
        run = s.get_one(TrainingRun, run_id)
        epochs = sorted(p.epoch for p in s.exec(select(TrainingPoint).where(
            TrainingPoint.run_id == run_id, col(TrainingPoint.val_loss).is_not(None))))
    assert run.status == "done" and epochs == list(range(1, run.epochs_done + 1))  # no epoch lost or repeated
    assert (tmp_path / "host-b" / run.metrics["model_path"]).is_dir()


def test_a_checkpoint_changed_in_the_store_is_refused_and_nothing_resumes_from_it(engine, session, demo, store,
                                                                                 monkeypatch, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    with Session(engine) as s:
        last = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]["last"]
    state = next(k for k in fs.find(f"{root}/{last['path']}") if k.endswith("state.json"))
    fs.pipe_file(state, fs.cat_file(state).replace(b'"epoch": 3', b'"epoch": 30'))
    on_another_host(monkeypatch, tmp_path)
    failed = take_over(engine, job_id)
    assert failed.status == "failed"
    assert f"checkpoint of epoch {DIES_AFTER} was changed in the artifact store" in failed.error
    assert "Restore it from backup, or start a new run" in failed.error
    assert not list((tmp_path / "host-b").rglob(f"epoch-{DIES_AFTER}"))  # nothing unverified was kept


def test_with_the_default_store_nothing_is_copied_or_recorded(engine, session, demo, tmp_path):
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config=FAST)
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    assert checkpoints.KEY not in training_runs.get_run(session, run.id).metrics


def recursive_parent(recorded: dict) -> str:
    return recorded["last"]["path"].rsplit("/", 1)[0]
