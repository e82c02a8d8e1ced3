"""Issue 20: `stillroom worker` on the embedded SQLite database: claims, heartbeats, takeovers and clean stops.

The same rules on a real PostgreSQL server with two worker processes: tests/postgres/test_postgres_workers.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import timedelta

import pytest
import worker_helpers as wh
from sqlalchemy import update
from sqlmodel import Session, col, select

from core.domain.errors import AuthenticationFailed, InvalidInput
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job, utcnow
from core.store.worker import QueueRules, Worker, claim_next, fail_exhausted, give_back, heartbeat

RULES = QueueRules(stale_after=timedelta(seconds=30), max_attempts=2)


@pytest.fixture
def quick(monkeypatch, tmp_path):
    """Workers that poll and heartbeat often, and where the jobs' processes write their executions."""
    monkeypatch.setenv("STILLROOM_WORKER_POLL_S", "0.1")
    monkeypatch.setenv("STILLROOM_WORKER_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("STILLROOM_WORKER_MAX_ATTEMPTS", "2")
    out = tmp_path / "executions.txt"
    monkeypatch.setenv("WORKER_TEST_OUT", str(out))
    monkeypatch.setenv("PYTHONPATH", wh.env(out)["PYTHONPATH"])
    get_settings.cache_clear()
    yield out
    get_settings.cache_clear()


def handed(session, demo, moderation, n: int = 1, **params) -> list[int]:
    ids = []
    for _ in range(n):
        job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params=params)
        ids.append(jobs.hand_to_workers(job.id).id)
    return ids


def events(engine, job_id: int) -> list[tuple[str, str]]:
    with Session(engine) as s:
        return [(e.actor, e.action) for e in s.exec(
            select(AuditEvent).where(AuditEvent.entity == "job", AuditEvent.entity_id == str(job_id))
            .order_by(col(AuditEvent.id)))]


def row(engine, job_id: int) -> Job:
    with Session(engine) as s:
        return s.get_one(Job, job_id)


def worker(engine, concurrency: int = 1, lines: list[str] | None = None) -> Worker:
    said = lines if lines is not None else []
    return Worker(engine=engine, concurrency=concurrency, once=True, spawn=wh.spawn_child, say=said.append)


def test_a_worker_runs_only_jobs_handed_to_it_and_in_their_submitters_name(engine, session, demo, moderation,
                                                                           quick):
    kept = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    [job_id] = handed(session, demo, moderation, sleep_s=2.0)
    lines: list[str] = []
    report = worker(engine, lines=lines).run()
    assert report.finished == {job_id: "done"} and row(engine, kept.id).status == "queued"
    done = row(engine, job_id)
    assert (done.status, done.worker, done.attempts, done.progress) == ("done", report.worker, 1, 1.0)
    assert events(engine, job_id) == [("dana", "job.submit"), ("dana", "job.handoff"), ("dana", "job.done")]
    assert f"job #{job_id} ({wh.KIND}) claimed, attempt 1" in lines and f"job #{job_id} ({wh.KIND}) done" in lines
    assert any(line.startswith(f"job #{job_id} ({wh.KIND}) ") and " of 4 · " in line for line in lines), lines
    with Session(engine) as s:
        finish = s.exec(select(AuditEvent).where(AuditEvent.action == "job.done",
                                                 AuditEvent.entity_id == str(job_id))).one()
    assert f'"worker":"{report.worker}"' in finish.payload


def test_concurrency_runs_that_many_jobs_at_once(engine, session, demo, moderation, quick):
    # Each job waits until three of them run at the same time: one at a time, each would give up and fail.
    ids = handed(session, demo, moderation, 3, together=3)
    report = worker(engine, concurrency=3).run()
    assert report.finished == {i: "done" for i in ids}
    starts, ends = wh.executions(quick)
    assert starts == ends == {i: 1 for i in ids}


def test_a_process_that_dies_inside_its_job_gives_it_back_then_fails_it_after_the_attempts(engine, session, demo,
                                                                                         moderation, quick):
    [job_id] = handed(session, demo, moderation, crash=True)
    report = worker(engine).run()
    failed = row(engine, job_id)
    assert (failed.status, failed.attempts, report.claimed) == ("failed", 2, [job_id, job_id])
    assert "stopped 2 times before it finished (its process exited with code 3)" in failed.error
    assert [a for _, a in events(engine, job_id)] == ["job.submit", "job.handoff", "job.requeued", "job.failed"]


def test_a_stale_job_is_taken_over_and_the_worker_that_lost_it_writes_nothing(engine, session, demo, moderation):
    [job_id] = handed(session, demo, moderation)
    first = claim_next(engine, worker="host-a:1:aaaaaa", rules=RULES)
    assert first is not None and first.attempt == 1
    assert claim_next(engine, worker="host-b:2:bbbbbb", rules=RULES) is None  # held, and its heartbeat is fresh
    with Session(engine) as s:  # host-a went quiet
        s.execute(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        s.commit()
    second = claim_next(engine, worker="host-b:2:bbbbbb", rules=RULES)
    assert second is not None and (second.job_id, second.attempt, second.took_over_from) == (
        job_id, 2, "host-a:1:aaaaaa")
    lost = jobs.JobContext(job_id, moderation.id, {}, engine, worker="host-a:1:aaaaaa")
    with pytest.raises(jobs.JobLost, match="taken over by another worker"):
        lost.progress(0.5, "still going", force=True)
    assert jobs._finish(engine, job_id, "done", {"by": "a"}, "", worker="host-a:1:aaaaaa").status == "running"
    assert heartbeat(engine, worker="host-a:1:aaaaaa") == 0 and heartbeat(engine, worker="host-b:2:bbbbbb") == 1
    assert events(engine, job_id)[-1] == ("(system)", "job.takeover")


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(engine, session, demo, moderation):
    [job_id] = handed(session, demo, moderation)
    for n in range(RULES.max_attempts + 1):
        with Session(engine) as s:
            s.execute(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
            s.commit()
        claim = claim_next(engine, worker=f"host-{n}:1:cccccc", rules=RULES)
        assert (claim is None) == (n == RULES.max_attempts)
    assert row(engine, job_id).status == "running"  # not claimed again: failed by the next worker's check
    assert fail_exhausted(engine, rules=RULES) == [job_id] and fail_exhausted(engine, rules=RULES) == []
    failed = row(engine, job_id)
    assert failed.status == "failed" and "worker stopped 2 times (last host-1:1:cccccc)" in failed.error
    assert events(engine, job_id)[-2:] == [("(system)", "job.takeover"), ("(system)", "job.failed")]


def test_a_job_run_by_hand_is_never_taken_over(engine, session, demo, moderation):
    [job_id] = handed(session, demo, moderation)
    jobs._claim(engine, job_id)  # its submitter runs it here (`stillroom jobs run`), not a worker
    with Session(engine) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        s.commit()
    assert claim_next(engine, worker="host-b:2:bbbbbb", rules=RULES) is None


def test_a_stopped_worker_gives_its_jobs_back_uncounted(engine, session, demo, moderation, quick, tmp_path):
    hold = tmp_path / "never"
    [job_id] = handed(session, demo, moderation, hold=str(hold))
    w = worker(engine)
    w.once = False
    threading.Thread(target=lambda: (wh._wait_for(lambda: sum(wh.executions(quick)[0].values()) == 1, "no start"),
                                     w.stop()), daemon=True).start()
    report = w.run()
    back = row(engine, job_id)
    assert report.finished == {job_id: "queued"}
    assert (back.status, back.worker, back.attempts) == ("queued", None, 0)
    assert events(engine, job_id)[-1] == ("(system)", "job.requeued")
    assert give_back(engine, job_id=job_id, worker=report.worker, reason="again", counted=True) == "finished"


def test_the_credential_of_a_workers_claim_runs_that_job_only(engine, session, demo, moderation):
    mine, other = handed(session, demo, moderation, 2)
    claim = claim_next(engine, worker="host-a:1:aaaaaa", rules=RULES)
    assert claim is not None and claim.job_id == mine
    with pytest.raises(AuthenticationFailed, match="is not job #"):  # the other job is not this credential's
        jobs._claim(engine, other, claim.credential)
    assert row(engine, other).status == "queued"
    assert jobs._claim(engine, mine, claim.credential).worker == "host-a:1:aaaaaa"
    with pytest.raises(InvalidInput, match="is running"):  # used up
        jobs._claim(engine, mine, claim.credential)


def test_by_default_start_detached_still_starts_a_process(engine, session, demo, moderation, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: started.append(args) or type("P", (), {"pid": 7})())
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    assert jobs.start_detached(job.id) == 7 and started[0][-3:] == ["jobs", "run", str(job.id)]
    assert (row(engine, job.id).for_workers, events(engine, job.id)) == (False, [("dana", "job.submit")])
    assert claim_next(engine, worker="host-a:1:aaaaaa", rules=RULES) is None  # not the workers' to take


def test_with_the_workers_setting_start_detached_leaves_the_job_queued_for_them(engine, session, demo, moderation,
                                                                             monkeypatch):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")
    get_settings.cache_clear()
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **kw: pytest.fail("no process may start"))
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    assert jobs.start_detached(job.id, extra_env={"KEY": "never stored"}) is None
    queued = row(engine, job.id)
    assert (queued.status, queued.for_workers, queued.runner_hash) == ("queued", True, None)
    assert events(engine, job.id) == [("dana", "job.submit"), ("dana", "job.handoff")]
    get_settings.cache_clear()


def test_a_running_job_cannot_be_handed_to_the_workers(engine, session, demo, moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    jobs._claim(engine, job.id)
    with pytest.raises(InvalidInput, match="only a queued or failed job can be handed"):
        jobs.hand_to_workers(job.id)


def test_stale_after_must_span_two_heartbeats(monkeypatch):
    monkeypatch.setenv("STILLROOM_WORKER_HEARTBEAT_S", "30")
    monkeypatch.setenv("STILLROOM_WORKER_STALE_S", "45")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="STILLROOM_WORKER_STALE_S .45. must be at least twice"):
        get_settings()
    get_settings.cache_clear()


def test_a_jobs_process_ends_when_its_worker_is_killed(engine, db_url, session, demo, moderation, quick, tmp_path):
    [job_id] = handed(session, demo, moderation, hold=str(tmp_path / "never"))
    w = wh.start_worker(quick, 1, DATABASE_URL=db_url, STILLROOM_DATA_DIR=str(tmp_path))
    wh._wait_for(lambda: wh.executions(quick)[0][job_id] == 1, "the worker never started the job")
    child = int(quick.read_text().split()[2])
    os.kill(w.pid, signal.SIGKILL)  # the worker alone: its job's process must not run on unsupervised
    w.wait()
    wh._wait_for(lambda: not _alive(child), "the job's process outlived its worker")
    assert row(engine, job_id).status == "running"  # left for another worker to take over once stale


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = f"/proc/{pid}/stat"
    return not os.path.exists(stat) or open(stat).read().rsplit(")", 1)[1].split()[0] != "Z"
