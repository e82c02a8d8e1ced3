"""A state change and its audit event commit together or not at all."""

import pytest
from sqlmodel import func, select

from core.access import projects
from core.store import audit
from core.store.models import AuditEvent, Project


def test_failed_audit_append_leaves_no_state_change(session, demo, monkeypatch):
    def broken_record(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "record", broken_record)
    with pytest.raises(RuntimeError):
        projects.create_project(session, actor=demo["admin"], name="Half written")
    session.rollback()
    assert session.exec(select(Project).where(Project.name == "Half written")).first() is None


def test_failure_after_the_event_is_written_rolls_back_both(session, demo, monkeypatch):
    real_record = audit.record
    before = session.exec(select(func.count()).select_from(AuditEvent)).one()

    def record_then_fail(*args, **kwargs):
        real_record(*args, **kwargs)  # the event is flushed into the transaction...
        raise RuntimeError("crash before commit")  # ...and the process dies before the commit

    monkeypatch.setattr(audit, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        projects.create_project(session, actor=demo["admin"], name="Half written")
    session.rollback()
    assert session.exec(select(Project).where(Project.name == "Half written")).first() is None
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == before
