"""Jobs: long work outside the UI's script run, with progress in the database."""

import pytest
from sqlmodel import select

from core.domain.errors import GateNotLocked, InvalidInput
from core.store import jobs
from core.store.models import AuditEvent, Job


@pytest.fixture
def counting_kind():
    @jobs.handler("test-count")
    def count(ctx):
        for i in range(5):
            ctx.progress((i + 1) / 5, f"step {i + 1} of 5", force=True)
        if ctx.params.get("fail"):
            raise GateNotLocked("The gate for project 'X' is not locked: lock it before training.")
        return {"counted": 5}

    yield "test-count"
    jobs.HANDLERS.pop("test-count")


def test_job_runs_to_done_with_progress_and_result(session, engine, demo, moderation, counting_kind):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind, params={})
    seen = []
    done = jobs.run(job.id, engine=engine, on_progress=lambda f, m: seen.append((f, m)))
    assert (done.status, done.progress, done.result) == ("done", 1.0, {"counted": 5})
    assert seen[-1] == (1.0, "step 5 of 5") and len(seen) == 5
    actions = session.exec(select(AuditEvent.action).where(AuditEvent.entity == "job")).all()
    assert actions == ["job.submit", "job.done"]


def test_failed_job_keeps_the_sentence_and_can_run_again(session, engine, demo, moderation, counting_kind):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind,
                      params={"fail": True})
    failed = jobs.run(job.id, engine=engine)
    assert failed.status == "failed" and "not locked" in failed.error
    with pytest.raises(InvalidInput, match="only a queued or failed job can run"):
        session.expire_all()
        j = session.get(Job, job.id)
        j.status = "done"
        session.add(j)
        session.commit()
        jobs.run(job.id, engine=engine)


def test_unknown_kind_is_refused(session, demo, moderation):
    with pytest.raises(InvalidInput, match="unknown job kind"):
        jobs.submit(session, actor=demo["dana"], project=moderation, kind="nope", params={})


def test_a_running_job_whose_process_died_is_marked_failed(session, demo, moderation, counting_kind):
    from datetime import timedelta

    from core.store.models import utcnow

    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind, params={})
    job.status, job.pid, job.heartbeat_at = "running", 999_999_999, utcnow() - timedelta(minutes=5)
    session.add(job)
    session.commit()
    assert jobs.get(session, job.id).status == "failed"
    assert "run it again to resume" in jobs.get(session, job.id).error


def test_open_jobs_are_the_newest_queued_running_or_failed_of_the_kinds_asked(session, engine, demo, moderation,
                                                                             counting_kind):
    done = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind, params={})
    jobs.run(done.id, engine=engine)
    failed = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind, params={"fail": True})
    jobs.run(failed.id, engine=engine)
    queued = jobs.submit(session, actor=demo["dana"], project=moderation, kind=counting_kind, params={})
    session.expire_all()
    assert [j.id for j in jobs.open_jobs(session, project_id=moderation.id, kinds=[counting_kind])] == [
        queued.id, failed.id]
    assert jobs.open_jobs(session, project_id=moderation.id, kinds=["train"]) == []
