"""The keyed chain: with STILLROOM_AUDIT_KEY every event carries an HMAC, so a rewrite needs the key (issue 9)."""

from __future__ import annotations

import pytest
from audit_attacks import raw, rechain
from sqlalchemy import text
from sqlmodel import Session, select

from core.access import people, projects
from core.store import audit, config, integrity, rowhash, verification
from core.store.models import AuditEvent, Project

KEY = "a-long-random-audit-key-for-tests"


@pytest.fixture
def keyed(monkeypatch):
    def use(key: str | None) -> None:
        if key is None:
            monkeypatch.delenv("STILLROOM_AUDIT_KEY", raising=False)
        else:
            monkeypatch.setenv("STILLROOM_AUDIT_KEY", key)
        config.get_settings.cache_clear()

    use(KEY)
    yield use
    config.get_settings.cache_clear()


@pytest.fixture
def team(engine, keyed) -> Project:
    """An admin, a project and a role, all written under the key."""
    with Session(engine, expire_on_commit=False) as s:
        admin = people.create_user(s, actor=None, username="admin", display_name="Ada", password="admin-pass-1")
        people.create_user(s, actor=admin, username="sam", display_name="Sam", password="sam-pass-12")
        project = projects.create_project(s, actor=admin, name="Routing", description="route tickets")
        projects.assign_role(s, actor=admin, project=project, username="sam", role="sponsor")
        return project


def _rewrite_consistently(engine, project_id: int) -> None:
    """Change the project's description, its event's row hash, every later hash, the anchors and the
    checkpoint file: everything anyone without the key can recompute."""
    raw(engine, f"UPDATE project SET description = 'rewritten' WHERE id = {project_id}")
    with Session(engine) as s:
        new = rowhash.row_state(s, entity="project", entity_id=str(project_id))
    with engine.begin() as conn:
        eid = conn.execute(text("SELECT id FROM audit_event WHERE entity = 'project' AND entity_id = :i"),
                           {"i": str(project_id)}).scalar()
        conn.execute(text("UPDATE audit_event SET row_hash = :r WHERE id = :i"), {"r": new, "i": eid})
    rechain(engine, from_id=eid)
    with engine.begin() as conn:
        for aid, event_id in conn.execute(text("SELECT id, event_id FROM audit_anchor")).all():
            h = conn.execute(text("SELECT hash FROM audit_event WHERE id = :i"), {"i": event_id}).scalar()
            if h:
                conn.execute(text("UPDATE audit_anchor SET head_hash = :h WHERE id = :a"), {"h": h, "a": aid})
        rows = conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id")).all()
    path = audit.checkpoint_path(engine)
    path.unlink()
    audit.append_checkpoint(path, {"event_id": rows[-1][0], "head_hash": rows[-1][1], "count": len(rows)})


def test_every_event_carries_an_hmac_and_the_key_stays_out_of_the_database(engine, team, db_url):
    with Session(engine) as s:
        events = s.exec(select(AuditEvent)).all()
    assert events and all(e.mac == audit.event_mac(KEY.encode(), e.hash) for e in events)
    assert verification.verify(engine).ok
    engine.dispose()
    assert KEY.encode() not in open(db_url.split("///", 1)[1], "rb").read()


def test_a_consistent_rewrite_without_the_key_is_caught_with_it(engine, team):
    _rewrite_consistently(engine, team.id)
    report = verification.verify(engine)
    assert not report.ok
    assert "carries an HMAC that the key does not produce" in report.problem


def test_without_a_key_verify_says_what_it_cannot_detect(engine, team, keyed):
    keyed(None)
    _rewrite_consistently(engine, team.id)
    report = verification.verify(engine)
    assert report.ok  # the documented limit: without the key a full rewrite verifies
    assert any("without STILLROOM_AUDIT_KEY" in line and "rewrite the checkpoint file" in line
               for line in report.lines())


def test_events_written_without_the_key_are_reported_under_it(engine, team, keyed):
    keyed(None)
    with Session(engine) as s:
        admin = people.get_user(s, "admin")
        projects.create_project(s, actor=admin, name="Unkeyed")
    keyed(KEY)
    report = verification.verify(engine)
    assert not report.ok and "carries no HMAC although a key is configured" in report.problem


def test_under_the_key_a_row_forged_with_its_event_is_not_vouched(engine, team):
    from audit_attacks import append_forged

    raw(engine, "INSERT INTO project (name, description, created_at) VALUES ('Forged', '', '2026-12-01 00:00:00')")
    with Session(engine) as s:
        pid = s.exec(select(Project.id).where(Project.name == "Forged")).one()
        row_hash = rowhash.row_state(s, entity="project", entity_id=str(pid))
    append_forged(engine, action="project.create", entity="project", entity_id=str(pid), project_id=pid,
                  row_hash=row_hash)
    with Session(engine) as s:
        assert pid not in integrity.vouched_ids(s, "project")
        assert team.id in integrity.vouched_ids(s, "project")


def test_a_short_key_is_refused(monkeypatch):
    monkeypatch.setenv("STILLROOM_AUDIT_KEY", "short")
    with pytest.raises(ValueError, match="shorter than 16 characters"):
        config.Settings()
