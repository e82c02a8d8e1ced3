"""Issue 20: a job held by a worker that went quiet reads "stalled" to whoever looks (core.store.jobs.state), not
"running" for ever; derived on reading (no event, no write), by the same span the workers' takeover uses."""

from __future__ import annotations

from datetime import timedelta

import pytest
import worker_helpers as wh
from click.testing import CliRunner
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from core.access import people
from core.cli import cli
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job, utcnow
from core.store.worker import QueueRules, claim_next

WORKER = "host-a:1:aaaaaa"


@pytest.fixture
def stale_60s(monkeypatch):
    monkeypatch.setenv("STILLROOM_WORKER_STALE_S", "60")
    monkeypatch.setenv("STILLROOM_WORKER_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    yield QueueRules.from_settings()
    get_settings.cache_clear()


def held(engine, session, demo, moderation, *, quiet_s: float) -> int:
    """A job claimed by WORKER, whose last heartbeat was ``quiet_s`` ago, half done."""
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    jobs.hand_to_workers(job.id)
    assert claim_next(engine, worker=WORKER).job_id == job.id
    with Session(engine) as s:
        s.execute(update(Job).where(col(Job.id) == job.id).values(
            heartbeat_at=utcnow() - timedelta(seconds=quiet_s), progress=0.5, message="step 2 of 4"))
        s.commit()
    return job.id


def read(engine, job_id: int) -> Job:
    with Session(engine) as s:
        return s.get_one(Job, job_id)


def event_count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def test_a_live_workers_job_reads_running_on_that_worker(engine, session, demo, moderation, stale_60s):
    job = read(engine, held(engine, session, demo, moderation, quiet_s=5))
    assert jobs.state(job).sentence() == f"running: on worker {WORKER}"
    assert jobs.timing(job).left_s is not None  # half done: the rate gives an estimate


def test_a_job_whose_worker_went_quiet_reads_stalled_with_who_and_since_when(engine, session, demo, moderation,
                                                                           stale_60s):
    job_id = held(engine, session, demo, moderation, quiet_s=300)
    before = event_count(engine)
    job = read(engine, job_id)
    state = jobs.state(job)
    beat = jobs._aware(job.heartbeat_at)
    assert state.status == "stalled"
    assert state.note.startswith(f"worker {WORKER} silent since {beat:%Y-%m-%d %H:%M:%S} UTC (5m 0")
    assert "another worker will take it over" in state.note
    assert jobs.timing(job).left_s is None  # nothing moves it: no finish is promised
    # Derived on reading: the row still says running, and reading wrote no event.
    assert (read(engine, job_id).status, event_count(engine)) == ("running", before)
    # It is exactly the job the next worker takes over.
    assert claim_next(engine, worker="host-b:2:bbbbbb", rules=stale_60s).took_over_from == WORKER


def test_the_stale_span_is_the_workers_setting(engine, session, demo, moderation, monkeypatch):
    job = read(engine, held(engine, session, demo, moderation, quiet_s=90))
    monkeypatch.setenv("STILLROOM_WORKER_STALE_S", "120")
    get_settings.cache_clear()
    assert jobs.state(job).status == "running"
    monkeypatch.setenv("STILLROOM_WORKER_STALE_S", "60")
    get_settings.cache_clear()
    assert jobs.state(job).status == "stalled"
    get_settings.cache_clear()


def test_a_stalled_job_out_of_claims_says_the_next_worker_fails_it(engine, session, demo, moderation, stale_60s):
    job_id = held(engine, session, demo, moderation, quiet_s=300)
    with Session(engine) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(attempts=stale_60s.max_attempts))
        s.commit()
    state = jobs.state(read(engine, job_id))
    assert state.status == "stalled" and "has used its 2 claims, so the next worker to poll fails it" in state.note
    assert "take it over" not in state.note


def test_a_job_run_by_hand_or_finished_is_never_stalled(engine, session, demo, moderation, stale_60s):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    jobs._claim(engine, job.id)  # its submitter runs it here: its own process, watched by mark_if_dead instead
    with Session(engine) as s:
        s.execute(update(Job).where(col(Job.id) == job.id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        s.commit()
    assert jobs.state(read(engine, job.id)).sentence() == "running"
    done_id = held(engine, session, demo, moderation, quiet_s=300)
    assert jobs._finish(engine, done_id, "done", {}, "", worker=WORKER).status == "done"
    assert jobs.state(read(engine, done_id)).sentence() == "done"


def test_a_job_queued_for_the_workers_says_a_worker_must_claim_it(engine, session, demo, moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    assert jobs.state(read(engine, job.id)).sentence() == "queued"
    jobs.hand_to_workers(job.id)
    assert jobs.state(read(engine, job.id)).sentence() == (
        "queued: for the workers: it starts when a `stillroom worker` claims it")


def test_jobs_list_and_jobs_show_tell_that_the_job_stalled(engine, session, demo, moderation, stale_60s):
    job_id = held(engine, session, demo, moderation, quiet_s=300)
    listed = CliRunner().invoke(cli, ["--as", "dana", "jobs", "list", moderation.name])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.split()[:1] == [str(job_id)])
    assert "stalled" in row.split() and "running" not in row.split()
    assert f"Job #{job_id} stalled: worker {WORKER} silent since " in listed.output
    shown = CliRunner().invoke(cli, ["--as", "dana", "jobs", "show", str(job_id)])
    assert shown.exit_code == 0, shown.output
    assert f"Job #{job_id} ({wh.KIND}): stalled: worker {WORKER} silent since " in shown.output
    assert "another worker will take it over" in shown.output
    assert "Progress: 50%, step 2 of 4" in shown.output and f"Claims by workers: 1, last by {WORKER}." in shown.output
    assert "left" not in shown.output  # no estimate for a job nothing moves


def test_jobs_show_is_refused_to_someone_who_cannot_see_the_project(engine, session, demo, moderation, stale_60s):
    job_id = held(engine, session, demo, moderation, quiet_s=5)
    people.create_user(session, actor=demo["admin"], username="olive", display_name="Olive", password="x" * 12)
    refused = CliRunner().invoke(cli, ["--as", "olive", "jobs", "show", str(job_id)])
    assert refused.exit_code != 0 and WORKER not in refused.output
    assert "olive holds no role on project 'Comment moderation'" in refused.output
