"""Issue 20: two `stillroom worker` processes share one queue on a real PostgreSQL server.

Runs on the throwaway cluster of test_postgres.py (skipped without PostgreSQL's server binaries on a developer
machine, failing in CI, where .ci/run installs them). Each worker is a process of its own (tests/worker_helpers.py)
whose jobs run in processes of their own, as on separate hosts; every execution of a job is written to a file, so
the tests count runs rather than trust the rows.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import fence_helpers as fh
import pytest
import worker_helpers as wh
from fence_helpers import store_elsewhere  # noqa: F401  (the fixture "store": an artifact store elsewhere)
from sqlalchemy import event
from sqlmodel import Session, col, select
from test_postgres import pg, pg_url  # noqa: F401  (the cluster, and a fresh seeded schema on it)
from test_postgres_request_log import engine  # noqa: F401  (DATABASE_URL on it: conftest's fixtures run there)

from core.store import jobs, verification
from core.store.config import get_settings
from core.store.models import AuditEvent, Job
from core.store.worker import claim_next


def settings(pg_url: str, tmp_path) -> dict[str, str]:  # noqa: F811
    return {"DATABASE_URL": pg_url, "STILLROOM_DATA_DIR": str(tmp_path), "STILLROOM_WORKER_POLL_S": "0.1",
            "STILLROOM_WORKER_HEARTBEAT_S": "0.5", "STILLROOM_WORKER_STALE_S": "3"}


def hand(session, demo, project, **params) -> int:
    job = jobs.submit(session, actor=demo["dana"], project=project, kind=wh.KIND, params=params)
    return jobs.hand_to_workers(job.id).id


def statuses(db, ids: list[int]) -> dict[int, str]:
    with Session(db) as s:
        return {j.id: j.status for j in s.exec(select(Job).where(col(Job.id).in_(ids)))}


def read_state(db, job_id: int) -> jobs.JobState:
    with Session(db) as s:
        return jobs.state(s.get_one(Job, job_id))


def wait_until(done, what: str, procs=()) -> None:
    deadline = time.monotonic() + wh.WAIT_S
    while not done():
        for p in procs:
            assert p.poll() is None, f"a worker ended early: {p.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_two_workers_share_the_queue_and_run_every_job_once(engine, session, demo, moderation, pg_url,  # noqa: F811
                                                           tmp_path):
    out = tmp_path / "executions.txt"
    # Each job waits until four run at once: only two workers with two slots each can run them.
    ids = [hand(session, demo, moderation, together=4, group=n // 4) for n in range(8)]
    workers = [wh.start_worker(out, 2, once=True, **settings(pg_url, tmp_path)) for _ in range(2)]
    said = [w.communicate(timeout=wh.WAIT_S * 2)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], said
    assert statuses(engine, ids) == {i: "done" for i in ids}, said
    starts, ends = wh.executions(out)
    assert starts == ends == {i: 1 for i in ids}, "no job runs twice and none is lost"
    with Session(engine) as s:
        holders = {j.worker for j in s.exec(select(Job).where(col(Job.id).in_(ids)))}
    assert len(holders) == 2, "both workers ran jobs"
    assert all(said_one.count(" done") == 4 for said_one in said), said


def test_a_killed_workers_job_is_taken_over_by_the_other(engine, session, demo, moderation, pg_url,  # noqa: F811
                                                         tmp_path, monkeypatch):
    out, hold = tmp_path / "executions.txt", tmp_path / "go"
    held = hand(session, demo, moderation, hold=str(hold))
    first = wh.start_worker(out, 1, **settings(pg_url, tmp_path))
    wait_until(lambda: wh.executions(out)[0][held] == 1, "the first worker never started the job", [first])
    with Session(engine) as s:
        lost_by = s.get_one(Job, held).worker
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its job's process, as when a host dies
    first.wait()
    # With no worker left, whoever reads the job learns that it stalled, and who left it (not "running" for ever).
    for name in ("STILLROOM_WORKER_STALE_S", "STILLROOM_WORKER_HEARTBEAT_S"):  # the reader's rule is the workers'
        monkeypatch.setenv(name, settings(pg_url, tmp_path)[name])
    get_settings.cache_clear()
    wait_until(lambda: read_state(engine, held).status == "stalled", "the dead worker's job never read stalled")
    assert f"worker {lost_by} silent since " in read_state(engine, held).note
    get_settings.cache_clear()
    hold.touch()
    quick = hand(session, demo, moderation)
    second = wh.start_worker(out, 1, **settings(pg_url, tmp_path))
    wait_until(lambda: statuses(engine, [held, quick]) == {held: "done", quick: "done"},
               "the second worker did not finish both jobs", [second])
    second.send_signal(signal.SIGTERM)
    said = second.communicate(timeout=60)[0]
    assert second.returncode == 0, said
    assert f"job #{held} ({wh.KIND}) claimed, attempt 2, taken over from {lost_by}" in said
    starts, ends = wh.executions(out)
    assert (starts[held], ends[held], starts[quick], ends[quick]) == (2, 1, 1, 1)
    with Session(engine) as s:
        job = s.get_one(Job, held)
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.entity == "job",
                                                                     AuditEvent.entity_id == str(held)))]
    assert (job.attempts, job.worker != lost_by) == (2, True)
    assert actions == ["job.submit", "job.handoff", "job.takeover", "job.done"]
    assert verification.verify(engine, files=False).ok


def test_a_lost_workers_handler_writes_nothing_after_a_takeover(engine, session, demo, tmp_path,  # noqa: F811
                                                                monkeypatch):
    # A real training job: its first worker, alive, is about to write its result when the second takes it over.
    fh.assert_only_the_new_holders_result(fh.train_taken_over(session, engine, demo=demo, tmp_path=tmp_path,
                                                               monkeypatch=monkeypatch))


def test_a_lost_worker_leaves_no_checkpoint_copy_behind(engine, session, demo, tmp_path, monkeypatch,  # noqa: F811
                                                        store):
    # Its epoch's copy reached the store before its fenced commit failed: the failed commit removes it.
    lost = fh.lost_before_recording_an_epoch(session, engine, demo=demo, tmp_path=tmp_path, monkeypatch=monkeypatch,
                                             store=store)
    assert lost.copied and lost.left == [] and lost.there == lost.recorded


def test_no_takeover_slips_in_between_a_fenced_write_and_its_commit(engine, session, demo, moderation):  # noqa: F811
    held = hand(session, demo, moderation)
    assert claim_next(engine, worker=fh.FIRST, rules=fh.RULES).job_id == held
    fh.go_quiet(engine, held)
    mine = jobs.fenced(engine, job_id=held, worker=fh.FIRST)
    tried = []

    @event.listens_for(mine, "commit")
    def take_over_now(_conn) -> None:  # the fence has claimed the job's row; the commit is next
        with ThreadPoolExecutor(1) as pool:  # another worker, on a connection of its own
            tried.append(pool.submit(claim_next, engine, worker=fh.SECOND, rules=fh.RULES).result(timeout=60))

    fh.renamed(mine, moderation.id, "written while held")
    assert tried == [None], "the job's row was locked by the committing write: the claim skipped it"
    assert fh.description(engine, moderation.id) == "written while held"
    fh.go_quiet(engine, held)  # quiet again: now the takeover goes through, and the first writes nothing more
    assert claim_next(engine, worker=fh.SECOND, rules=fh.RULES).took_over_from == fh.FIRST
    with pytest.raises(jobs.JobLost):
        fh.renamed(jobs.fenced(engine, job_id=held, worker=fh.FIRST), moderation.id, "late")
    assert fh.description(engine, moderation.id) == "written while held"
