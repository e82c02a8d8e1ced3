"""The audit hash chain: verification finds the first broken link."""

import pytest
from sqlalchemy import text
from sqlmodel import Session

from core.store import audit, verification


def _tamper(engine, *statements):
    """Edit the log as someone with the database file could: triggers dropped first."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("DROP TRIGGER audit_event_no_delete"))
        conn.execute(text("DROP TRIGGER audit_event_no_replace"))
        for s in statements:
            conn.execute(text(s))


def test_intact_chain_verifies_every_event(engine, demo):
    report = verification.verify(engine)
    assert report.ok and report.checked > 10
    with Session(engine) as s:
        assert report.head_hash == audit.head_hash(s)
    assert "intact" in report.sentence()


def test_edited_event_is_reported_by_id(engine, demo):
    _tamper(engine, "UPDATE audit_event SET actor = 'mallory' WHERE id = 7")
    report = verification.verify(engine)
    assert (report.ok, report.broken_at) == (False, 7)
    assert "edited outside Stillroom" in report.sentence()


def test_deleted_event_is_reported_at_the_next_link(engine, demo):
    _tamper(engine, "DELETE FROM audit_event WHERE id = 5")
    report = verification.verify(engine)
    assert (report.ok, report.broken_at) == (False, 6)
    assert "does not follow event #4" in report.problem


def test_reordered_events_are_reported(engine, demo):
    cols = "ts, actor, project_id, action, entity, entity_id, payload, prev_hash, hash"
    _tamper(
        engine,
        "CREATE TEMP TABLE swap AS SELECT * FROM audit_event WHERE id IN (3, 4)",
        "UPDATE audit_event SET prev_hash = 'x' || id, hash = 'y' || id WHERE id IN (3, 4)",
        f"UPDATE audit_event SET ({cols}) = (SELECT {cols} FROM swap WHERE swap.id = 4) WHERE id = 3",
        f"UPDATE audit_event SET ({cols}) = (SELECT {cols} FROM swap WHERE swap.id = 3) WHERE id = 4",
    )
    report = verification.verify(engine)
    assert (report.ok, report.broken_at) == (False, 3)


def test_events_in_one_transaction_chain_onto_each_other(session, demo):
    first = audit.record(session, actor="admin", action="test.one", entity="test")
    second = audit.record(session, actor="admin", action="test.two", entity="test")
    session.commit()
    assert second.prev_hash == first.hash


def test_a_fork_of_the_chain_is_impossible(engine, demo):
    """Two writers that read the same head cannot both append (unique prev_hash)."""
    with Session(engine) as a, Session(engine) as b:
        head = audit.head_hash(a)
        audit.record(a, actor="admin", action="test.a", entity="test")
        a.commit()
        b.add(audit.AuditEvent(ts="t", actor="admin", action="test.b", entity="test", payload="{}",
                               prev_hash=head, hash="f" * 64))
        with pytest.raises(Exception, match="UNIQUE|append-only"):
            b.commit()
    assert verification.verify(engine).ok


def test_list_events_filters_and_pages(session, demo, moderation):
    events, total = audit.list_events(session, project_id=moderation.id, limit=2)
    assert total == 5  # project.create + four role assignments
    assert len(events) == 2 and events[0].id > events[1].id
    only, n = audit.list_events(session, action="role.assign", project_id=moderation.id)
    assert n == 4 and {e.action for e in only} == {"role.assign"}
