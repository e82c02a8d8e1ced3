"""A real training job taken over while its first worker is alive and about to write its result: the scenario
that tests/store/test_worker_fence.py runs on SQLite and tests/postgres/test_postgres_workers.py on PostgreSQL;
and the same with an artifact store that is not the data directory (``store``), the first worker held before it
records an epoch, whose checkpoint copy must not outlive its failed commit (tests/training/test_checkpoint_store.py
and the PostgreSQL file).

Both holders run the real "train" handler (core.training.jobs) through ``jobs.run`` with their claim's
credential, as `stillroom jobs run` does under a worker: the first in a thread that trains to the end and is held
just before it writes its result (the run done, its model artifact, its figures); meanwhile its heartbeat goes
quiet, a second worker takes the job over and finishes it; then the first is let go.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import fsspec
import pytest
from eval_helpers import FAST, easy_gate, teacher_run_with_holdout
from sqlalchemy import update
from sqlmodel import Session, col, select

from core.access import projects
from core.gate import gate
from core.ml import students
from core.store import artifacts, audit, checkpoint_copies, jobs
from core.store.config import get_settings
from core.store.models import Artifact, AuditEvent, Job, Project, TrainingRun, utcnow
from core.store.worker import QueueRules, claim_next
from core.training import jobs as training_jobs
from core.training import runs as training_runs

FIRST, SECOND = "host-a:1:aaaaaa", "host-b:2:bbbbbb"
LOST_MS = 987.0  # the speed only the first holder would record: the mark of its write
WAIT_S = 300.0  # a guard against a hung run on a loaded machine, never a figure under test
RULES = QueueRules(stale_after=timedelta(seconds=30), max_attempts=3)


def renamed(engine, project_id: int, description: str) -> None:
    """A write of the kind a handler makes: an ORM row changed and committed in a session on ``engine``."""
    with Session(engine) as s:
        project = s.get_one(Project, project_id)
        project.description = description
        s.add(project)
        s.commit()


def description(engine, project_id: int) -> str:
    with Session(engine) as s:
        return s.get_one(Project, project_id).description


def go_quiet(engine, job_id: int) -> None:
    """The job's worker stopped heartbeating five minutes ago."""
    with Session(engine) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        s.commit()


@dataclass
class TakenOver:
    job: Job  # as the database holds it afterwards
    first_saw: Job  # what the first holder's jobs.run returned
    run: TrainingRun
    students: list[Artifact]
    run_actions: list[str]
    job_events: list[AuditEvent]


def train_taken_over(session: Session, engine, *, demo: dict, tmp_path, monkeypatch) -> TakenOver:
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config=FAST)
    # Held once it has trained to the end and measured its student: its result is next.
    first_saw = taken_over_while_held(engine, job.id, monkeypatch, hold=(students, "measure_speed"),
                                      then=lambda speed: dataclasses.replace(speed, ms_per_example=LOST_MS))
    return _as_stored(engine, job.id, run.id, first_saw)


def taken_over_while_held(engine, job_id: int, monkeypatch, *, hold: tuple[object, str],
                          then: Callable[[Any], Any] = lambda out: out) -> Job:
    """The job handed to the workers; FIRST runs it in a thread that is held when it calls ``hold`` (a module and
    a function's name; ``then`` may change what the call returns, to mark FIRST's write). Meanwhile its heartbeat
    goes quiet and SECOND takes the job over and finishes it; then FIRST goes on. Returns what FIRST's run
    returned."""
    jobs.hand_to_workers(job_id, engine=engine)
    first = claim_next(engine, worker=FIRST, rules=RULES)
    assert first is not None and first.job_id == job_id
    reached, release = threading.Event(), threading.Event()
    owner, name = hold
    real = getattr(owner, name)

    def held(*args, **kw):  # noqa: ANN002, ANN003
        if threading.current_thread().name != "first-holder":
            return real(*args, **kw)
        reached.set()
        assert release.wait(WAIT_S), "never released"
        return then(real(*args, **kw))

    monkeypatch.setattr(owner, name, held)
    first_saw: dict[str, Job] = {}
    holder = threading.Thread(name="first-holder", daemon=True, target=lambda: first_saw.update(
        row=jobs.run(job_id, engine=engine, credential=first.credential)))
    holder.start()
    assert reached.wait(WAIT_S), f"the first holder never reached {name}"
    go_quiet(engine, job_id)  # its worker went quiet (the holder itself is alive and busy)
    second = claim_next(engine, worker=SECOND, rules=RULES)
    assert second is not None and second.took_over_from == FIRST
    finished = jobs.run(job_id, engine=engine, credential=second.credential)
    assert finished.status == "done", finished.error
    release.set()
    holder.join(WAIT_S)
    assert not holder.is_alive() and "row" in first_saw
    return first_saw["row"]


def _as_stored(engine, job_id: int, run_id: int, first_saw: Job) -> TakenOver:
    with Session(engine) as s:
        run = s.get_one(TrainingRun, run_id)
        arts = [a for a in s.exec(select(Artifact).where(Artifact.kind == "student"))
                if a.meta.get("training_run") == run_id]
        actions = [e.action for e in s.exec(select(AuditEvent).where(
            AuditEvent.entity == "training_run", AuditEvent.entity_id == str(run_id)).order_by(col(AuditEvent.id)))]
        events = list(s.exec(select(AuditEvent).where(AuditEvent.entity == "job", AuditEvent.entity_id == str(job_id))
                             .order_by(col(AuditEvent.id))))
        return TakenOver(s.get_one(Job, job_id), first_saw, run, arts, actions, events)


def assert_only_the_new_holders_result(taken: TakenOver) -> None:
    job, run = taken.job, taken.run
    assert (job.status, job.worker, job.attempts) == ("done", SECOND, 2)
    assert (taken.first_saw.status, taken.first_saw.worker) == ("done", SECOND)  # it learned it had lost
    assert run.status == "done" and "error" not in run.metrics
    assert run.metrics["ms_per_example"] != LOST_MS, "the first holder's figures reached the run"
    assert [a.id for a in taken.students] == [job.result["model_artifact"]] == [run.metrics["model_artifact_id"]]
    assert taken.run_actions.count("training.finish") == 1 and "training.fail" not in taken.run_actions
    assert [e.action for e in taken.job_events] == ["job.submit", "job.handoff", "job.takeover", "job.done"]
    assert SECOND in taken.job_events[-1].payload


# --------------------------------------------------------------------------- checkpoint copies in a store elsewhere


@pytest.fixture(name="store")
def store_elsewhere(engine, monkeypatch, tmp_path):
    """An artifact store that is not the data directory (fsspec's memory filesystem stands in for object storage)
    and host-a's data directory; (fs, root). The audit checkpoint file stays where it was (on PostgreSQL it lies
    under the data directory)."""
    kept = audit.checkpoint_path(engine)
    if kept is not None:
        monkeypatch.setenv("STILLROOM_AUDIT_CHECKPOINT_FILE", str(kept))
    url = f"memory://team-{uuid.uuid4().hex[:8]}/stillroom"
    monkeypatch.setenv("STILLROOM_ARTIFACT_STORE", url)
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / "host-a"))
    get_settings.cache_clear()
    fs, root = fsspec.core.url_to_fs(url)
    yield fs, root
    fs.rm(root, recursive=True)
    get_settings.cache_clear()


def stored_copies(fs, root: str, engine, run_id: int) -> tuple[set[str], set[str]]:
    """(the copies in the store's folder of the run's checkpoints, the copies its record names)."""
    with Session(engine) as s:
        run = s.get_one(TrainingRun, run_id)
    folder = f"{root}/{checkpoint_copies.stored_dir(run)}"
    there = {k.rstrip("/").rsplit("/", 1)[1] for k in fs.ls(folder, detail=False)} if fs.exists(folder) else set()
    return there, {c.path.rsplit("/", 1)[1] for c in checkpoint_copies.recorded(run.metrics).values()}


def two_hosts_by_thread(monkeypatch, tmp_path) -> None:
    """The first holder's thread works in host-a's data directory, every other thread in host-b's (each host's
    files are its own; the store and the database are shared)."""
    real = artifacts.get_settings

    def this_host():  # noqa: ANN202
        host = "host-a" if threading.current_thread().name == "first-holder" else "host-b"
        return real().model_copy(update={"data_dir": tmp_path / host})

    monkeypatch.setattr(artifacts, "get_settings", this_host)


@dataclass
class LostCopies:
    copied: list[str]  # what the first holder copied to the store
    left: list[str]  # of those, what is still there
    there: set[str]  # every copy in the store's folder of the run's checkpoints
    recorded: set[str]  # the copies the run records


def lost_before_recording_an_epoch(session: Session, engine, *, demo: dict, tmp_path, monkeypatch,
                                   store: tuple[Any, str]) -> LostCopies:
    """FIRST is held when its first epoch is trained, before it records it; meanwhile the job is taken over on
    another host and finished there. Then FIRST copies its checkpoint to the store and its fenced commit fails."""
    fs, root = store
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config=FAST)
    two_hosts_by_thread(monkeypatch, tmp_path)
    copied: list[str] = []
    real_upload = artifacts.ArtifactStore.upload

    def upload(self, path, rel: str) -> None:  # noqa: ANN001
        if threading.current_thread().name == "first-holder":
            copied.append(rel)
        real_upload(self, path, rel)

    monkeypatch.setattr(artifacts.ArtifactStore, "upload", upload)
    first_saw = taken_over_while_held(engine, job.id, monkeypatch, hold=(training_jobs, "_record_epoch"))
    assert (first_saw.status, first_saw.worker) == ("done", SECOND)
    there, recorded = stored_copies(fs, root, engine, run.id)
    return LostCopies(copied, [rel for rel in copied if fs.exists(f"{root}/{rel}")], there, recorded)
