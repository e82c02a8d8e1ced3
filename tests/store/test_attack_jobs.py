"""A job killed mid-run (issue 11): its failure is recorded once, with an audit event, however many readers
notice the dead process."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.store import jobs
from core.store.models import AuditEvent, utcnow


@pytest.fixture
def sleeping_kind():
    @jobs.handler("test-sleep")
    def sleep(ctx):
        return {}

    yield "test-sleep"
    jobs.HANDLERS.pop("test-sleep")


def test_a_killed_jobs_failure_is_audited_once(session, engine, demo, moderation, sleeping_kind):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=sleeping_kind, params={})
    job.status, job.pid, job.heartbeat_at = "running", proc.pid, utcnow() - timedelta(minutes=5)
    session.add(job)
    session.commit()
    proc.kill()  # the job's process is killed: no handler gets to record anything
    proc.wait()
    with Session(engine) as other:  # two readers notice the death
        assert jobs.get(other, job.id).status == "failed"
    assert jobs.get(session, job.id).status == "failed"
    failed = [e for e in session.exec(select(AuditEvent).where(AuditEvent.entity == "job")).all()
              if e.action == "job.failed"]
    assert len(failed) == 1 and failed[0].entity_id == str(job.id) and "process" in failed[0].payload
