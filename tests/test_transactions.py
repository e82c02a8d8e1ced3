"""A state change and its audit event commit together or not at all."""

import pytest
from sqlmodel import func, select

from core.governance import audit, projects
from core.models import AuditEvent, Project


def test_failed_audit_append_leaves_no_state_change(session, demo, monkeypatch):
    def broken_record(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "record", broken_record)
    with pytest.raises(RuntimeError):
        projects.create_project(session, actor=demo["admin"], name="Half written")
    session.rollback()
    assert session.exec(select(Project).where(Project.name == "Half written")).first() is None


def test_failed_state_change_leaves_no_audit_event(session, demo):
    before = session.exec(select(func.count()).select_from(AuditEvent)).one()
    projects.create_project(session, actor=demo["admin"], name="Unique")
    with pytest.raises(Exception):
        projects.create_project(session, actor=demo["admin"], name="Unique")
    session.rollback()
    after = session.exec(select(func.count()).select_from(AuditEvent)).one()
    assert after == before + 1
