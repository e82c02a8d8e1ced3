"""A job's failure reaches its submitter exactly once, whichever process records it (core.store.jobs
noticed_failure): the job's own run, a worker whose job ran out of claims, a reader that found its process dead.

The attack of issue 20's known gap: a `stillroom jobs run` under a worker loses its job to another worker whose run
then fails too; the lost run ends "failed" as well, and used to tell the submitter a second time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import fence_helpers as fh
import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from core.cli.jobs import run_with_bar
from core.domain.errors import StillroomError
from core.notify import inbox
from core.notify.rules import Kind
from core.store import jobs
from core.store.models import AuditEvent, Job, utcnow
from core.store.worker import QueueRules, claim_next, fail_exhausted, give_back

KIND = "test-lost-then-failed"
RULES = QueueRules(stale_after=timedelta(seconds=30), max_attempts=2)
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # a guard against a hung thread on a loaded machine, never a figure under test


class Held:
    """The first holder's run, held inside its handler until the job has been taken over (and failed)."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()


@pytest.fixture
def held():
    hold = Held()

    @jobs.handler(KIND)
    def work(ctx: jobs.JobContext) -> dict:
        if ctx.worker == fh.FIRST:
            hold.reached.set()
            assert hold.release.wait(WAIT_S), "never released"
            ctx.progress(0.9, "still going", force=True)  # JobLost: another worker holds the job now
        raise StillroomError("the model directory is not readable on this host.")

    yield hold
    jobs.HANDLERS.pop(KIND)


def job_failed_notices(session, person) -> list[str]:
    session.expire_all()
    return [i.text for i in inbox.inbox(session, viewer=person) if i.kind == Kind.JOB_FAILED.value]


def failures(engine, job_id: int) -> int:
    with Session(engine) as s:
        return len(s.exec(select(AuditEvent).where(AuditEvent.action == "job.failed",
                                                   AuditEvent.entity_id == str(job_id))).all())


def lost_run(job_id: int, credential: str) -> tuple[threading.Thread, dict]:
    """FIRST's `stillroom jobs run` (the CLI's own function, which told the submitter before), in a thread."""
    out: dict = {}

    def go() -> None:
        try:
            run_with_bar(job_id, f"job #{job_id}", credential=credential)
        except StillroomError as exc:  # the CLI turns it into its exit code
            out["error"] = str(exc)

    thread = threading.Thread(target=go, name="first-holder", daemon=True)
    thread.start()
    return thread, out


def new_holder_fails(engine, job_id: int, credential: str, how: str) -> None:
    if how == "its run failed":
        with pytest.raises(StillroomError, match="not readable"):
            run_with_bar(job_id, f"job #{job_id}", credential=credential)
    else:  # its process died on its last claim: the worker gives the job back, which fails it
        assert give_back(engine, job_id=job_id, worker=fh.SECOND, reason="its process exited with code 3",
                         counted=True, rules=RULES) == "failed"


@pytest.mark.parametrize("how", ["its run failed", "its process died"])
def test_a_run_that_lost_its_job_to_a_holder_that_failed_too_tells_the_submitter_once(engine, session, demo,
                                                                                     moderation, held, how):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=KIND, params={})
    jobs.hand_to_workers(job.id, engine=engine)
    first = claim_next(engine, worker=fh.FIRST, rules=RULES)
    thread, out = lost_run(job.id, first.credential)
    assert held.reached.wait(WAIT_S), "the first holder never started"
    fh.go_quiet(engine, job.id)
    second = claim_next(engine, worker=fh.SECOND, rules=RULES)
    assert second is not None and second.took_over_from == fh.FIRST
    new_holder_fails(engine, job.id, second.credential, how)
    held.release.set()
    thread.join(WAIT_S)
    assert not thread.is_alive() and f"Job #{job.id} failed" in out["error"]  # the lost run saw the failure
    notices = job_failed_notices(session, demo["dana"])
    assert len(notices) == 1 and f"job #{job.id}" in notices[0], notices
    assert failures(engine, job.id) == 1
    assert job_failed_notices(session, demo["sam"]) == []


def test_each_failure_of_a_job_run_by_hand_is_told_once(engine, session, demo, moderation, held):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=KIND, params={})
    for n in (1, 2):  # failed, then resumed and failed again: two failures, two notices
        with pytest.raises(StillroomError, match="not readable"):
            run_with_bar(job.id, f"job #{job.id}")
        assert len(job_failed_notices(session, demo["dana"])) == n == failures(engine, job.id)


def test_a_job_whose_workers_went_quiet_once_too_often_is_told_once(engine, session, demo, moderation, held):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=KIND, params={})
    jobs.hand_to_workers(job.id, engine=engine)
    for n in range(RULES.max_attempts):
        assert claim_next(engine, worker=f"host-{n}:1:cccccc", rules=RULES) is not None
        with Session(engine) as s:
            s.execute(update(Job).where(col(Job.id) == job.id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
            s.commit()
    assert fail_exhausted(engine, rules=RULES) == [job.id] and fail_exhausted(engine, rules=RULES) == []
    (notice,) = job_failed_notices(session, demo["dana"])
    assert f"job #{job.id}" in notice and "worker stopped 2 times" in notice


def found_dead(session, job_id: int, **values) -> None:
    """The job's process (or worker) went away an hour ago, without a word."""
    session.execute(update(Job).where(col(Job.id) == job_id).values(
        status="running", heartbeat_at=utcnow() - timedelta(hours=1), **values))
    session.commit()


@pytest.mark.parametrize("command", ["jobs show", "worker --once"])
def test_a_command_that_finds_a_job_failed_tells_the_submitter_in_its_own_process(engine, session, demo, moderation,
                                                                               held, command):
    # A fresh process, as on a host: what registers the notice is the command's own doing, not this test's imports.
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=KIND, params={})
    if command == "jobs show":  # run by hand; its process is gone
        found_dead(session, job.id, pid=dead_pid())
        argv = ["--as", "dana", "jobs", "show", str(job.id)]
    else:  # handed to the workers, whose last claim went quiet: the next worker fails it
        jobs.hand_to_workers(job.id, engine=engine)
        found_dead(session, job.id, for_workers=True, worker="host-z:1:zzzzzz", attempts=99)
        argv = ["worker", "--once"]
    ran = subprocess.run([sys.executable, "-m", "core.cli", *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=WAIT_S, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert session.get(Job, job.id, populate_existing=True).status == "failed"
    (notice,) = job_failed_notices(session, demo["dana"])
    assert f"job #{job.id}" in notice


def dead_pid() -> int:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(gone.stdout)
