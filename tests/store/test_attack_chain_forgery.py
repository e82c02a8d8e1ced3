"""Issue 16: forging the chain with write access to the database only (the checkpoint file untouched).

The forger INSERTs an approving sign-off, a threshold and a ship decision for a failing evaluation, three events
chained with SHA-256, and an anchor with entity 'migration' that once moved the legacy boundary over them; then a
genuine commit writes a checkpoint whose head covers the forged events. Each attack here passed before.
"""

from __future__ import annotations

import json

import pytest
from audit_attacks import append_forged, forge_ship, insert_anchor, mac_everything, raw, rechain
from sqlalchemy import text
from sqlmodel import Session, select

from core.access import projects
from core.decision import portfolio
from core.domain import hashing
from core.domain.errors import GateTampered, GovernanceViolation, RecordTampered
from core.gate import gate
from core.rollout import rollout
from core.store import audit, config, integrity, verification
from core.store.models import Decision, GateVersion, Project, User

KEY = "a-long-random-audit-key-for-tests"
FORGED = ("sign_off", "threshold_proposal", "decision")


@pytest.fixture
def keyed(engine, monkeypatch):
    """STILLROOM_AUDIT_KEY set, and every event already written carrying its HMAC under it."""
    mac_everything(engine, KEY.encode())
    monkeypatch.setenv("STILLROOM_AUDIT_KEY", KEY)
    config.get_settings.cache_clear()
    yield KEY
    config.get_settings.cache_clear()


def _forge(engine, demo, evaluation, **how) -> dict[str, tuple[int, int]]:
    return forge_ship(engine, evaluation=evaluation, validator_id=demo["val"].id, sponsor_id=demo["sam"].id, **how)


def _vouched(engine, forged) -> dict[str, bool]:
    with Session(engine) as s:
        return {e: forged[e][0] in integrity.vouched_ids(s, e, project_ids=[s.get(Decision, forged["decision"][0])
                                                                              .project_id]) for e in FORGED}


def _genuine_commit(engine, demo) -> None:
    """The next genuine commit after the forgery: it writes a checkpoint whose head covers the forged events."""
    with Session(engine) as s:
        projects.create_project(s, actor=s.merge(demo["admin"]), name="Next project")


def _problems(engine) -> list[str]:
    report = verification.verify(engine, files=False)
    assert not report.ok, "the forgery verified as intact"
    return report.problems


def test_forged_ship_with_a_migration_anchor_is_not_vouched_and_verify_reports_it(engine, demo, gated, failing_eval):
    forged = _forge(engine, demo, failing_eval)
    assert _vouched(engine, forged) == dict.fromkeys(FORGED, False)
    with Session(engine) as s:
        with pytest.raises(GovernanceViolation, match="no decision has been taken"):
            rollout.start(s, actor=s.merge(demo["oscar"]), project=s.merge(gated))
        status = {p.name: p.status for p in portfolio.portfolio(s, user=s.merge(demo["admin"]))}
    assert not status[gated.name].startswith("Shipped")
    _genuine_commit(engine, demo)
    assert _vouched(engine, forged) == dict.fromkeys(FORGED, False)
    problems = _problems(engine)
    first, last = forged["sign_off"][1], forged["decision"][1]
    assert any(f"events #{first}-#{last} were appended outside Stillroom" in p for p in problems), problems
    assert any("a second 'migration' anchor" in p for p in problems), problems


def test_forged_ship_with_true_row_hashes_and_anchors_is_reported_by_checkpoint_coverage(engine, demo, failing_eval):
    forged = _forge(engine, demo, failing_eval, hashed=True, anchored=True, migration=False)
    _genuine_commit(engine, demo)
    problems = _problems(engine)
    first, last = forged["sign_off"][1], forged["decision"][1]
    assert problems == [f"events #{first}-#{last} were appended outside Stillroom: no line of the checkpoint file "
                        "covers them, although later commits wrote theirs (unless the process that committed them "
                        "stopped before writing its line)."], problems
    # Once a genuine commit follows them, the readers know they are no pending tail either.
    assert _vouched(engine, forged) == dict.fromkeys(FORGED, False)


def test_under_the_key_the_forgery_is_refused_by_every_reader_before_verify(keyed, engine, demo, failing_eval):
    forged = _forge(engine, demo, failing_eval)
    assert _vouched(engine, forged) == dict.fromkeys(FORGED, False)
    with Session(engine) as s:
        with pytest.raises(RecordTampered, match=f"decision #{forged['decision'][0]} does not match"):
            integrity.require_vouched(s, "decision", s.get(Decision, forged["decision"][0]))


def test_under_the_key_a_gate_floor_lowered_with_its_hashes_recomputed_is_refused(keyed, engine, demo, gated):
    with Session(engine) as s:
        gv = gate.current(s, project_id=gated.id)
        integrity.require_gate_intact(s, gv)  # vouched before the attack
        spec = json.loads(gv.spec_json)
        spec["slice_floors"][0]["floor"] = 0.5
        lowered = hashing.canonical_json(spec)
        new_hash = integrity.spec_hash(project_id=gv.project_id, version=gv.version, spec_json=lowered,
                                       reason=gv.reason, supersedes=gv.supersedes_hash)
        with engine.connect() as conn:
            lock_id = conn.execute(text("SELECT id FROM audit_event WHERE action = 'gate.lock' AND entity_id = :g"),
                                   {"g": str(gv.id)}).scalar()
    raw(engine, "UPDATE gate_version SET spec_json = :s, content_hash = :h WHERE id = :g",
        "UPDATE audit_event SET row_hash = NULL WHERE id = :e", params={"s": lowered, "h": new_hash, "g": gv.id,
                                                                       "e": lock_id})
    rechain(engine, from_id=lock_id)
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
    insert_anchor(engine, event_id=last, entity="migration", entity_id="0005")
    with Session(engine) as s:
        lowered_gate = s.get(GateVersion, gv.id)
        assert integrity.verify_gate(lowered_gate)  # its own hash was recomputed
        with pytest.raises(GateTampered):
            integrity.require_gate_intact(s, lowered_gate)


@pytest.mark.parametrize("anchor", ["second migration", "migration below #1", "event not anchored", "other entity",
                                    "repeated"])
def test_an_anchor_inserted_outside_stillroom_is_a_finding(engine, demo, gated, anchor):
    with engine.connect() as conn:
        lock_id, gate_id = conn.execute(text("SELECT id, entity_id FROM audit_event WHERE action = 'gate.lock' "
                                             "ORDER BY id DESC LIMIT 1")).one()
        plain = conn.execute(text("SELECT id FROM audit_event WHERE action != 'gate.lock' ORDER BY id DESC LIMIT 1")
                             ).scalar()
    kind = {"second migration": (lock_id, "migration", "0005", None), "migration below #1": (lock_id, "migration",
                                                                                            "0005", 0),
            "event not anchored": (plain, "gate", "1", None), "other entity": (lock_id, "decision", gate_id, None),
            "repeated": (lock_id, "gate", gate_id, None)}
    event_id, entity, entity_id, anchor_id = kind[anchor]
    aid = insert_anchor(engine, event_id=event_id, entity=entity, entity_id=entity_id, anchor_id=anchor_id)
    assert any(p.startswith(f"anchor #{aid} ") for p in _problems(engine))


# --------------------------------------------------------------------------- a database made before issue 16


@pytest.fixture
def legacy(db_url):
    """A database made before row hashes (schema 0004: an admin and a project, their events chained the old way),
    upgraded to today's: migration 0005 anchors the legacy boundary at its second event."""
    from migration_helpers import engine_at

    from core.store.db import init_db

    eng = engine_at(db_url, "0004")
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO user (id, username, display_name, password_hash, is_admin, is_active, "
                          "created_at) VALUES (1, 'ada', 'Ada', '-', 1, 1, '2025-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO project (id, name, description, created_at) "
                          "VALUES (1, 'Old', '', '2025-01-01 00:00:00')"))
        prev = audit.GENESIS_HASH
        for n, (action, entity, pid) in enumerate([("user.create", "user", None), ("project.create", "project", 1)]):
            ts = f"2025-01-01T00:00:0{n}.000000+00:00"
            digest = audit.event_hash(prev, ts, "ada", pid, action, entity, "1", "{}")
            conn.execute(text("INSERT INTO audit_event (ts, actor, project_id, action, entity, entity_id, payload, "
                              "prev_hash, hash) VALUES (:ts, 'ada', :pid, :a, :e, '1', '{}', :prev, :h)"),
                         {"ts": ts, "pid": pid, "a": action, "e": entity, "prev": prev, "h": digest})
            prev = digest
    init_db(eng)
    yield eng
    eng.dispose()


def _create_project(engine, name: str) -> int:
    with Session(engine) as s:
        return projects.create_project(s, actor=s.get(User, 1), name=name).id


def _as_written_before_issue_16(engine) -> None:
    """Rewrite the checkpoint file's lines as Stillroom wrote them before issue 16: without their range."""
    path = audit.checkpoint_path(engine)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(hashing.canonical_json({k: v for k, v in cp.items() if k not in ("first", "legacy")}) + "\n"
                            for cp in lines))


def test_a_database_with_legacy_events_and_old_checkpoint_lines_still_verifies(legacy):
    second = _create_project(legacy, "Second")
    _as_written_before_issue_16(legacy)
    third = _create_project(legacy, "Third")
    assert verification.verify(legacy, files=False).ok, verification.verify(legacy, files=False).lines()
    with Session(legacy) as s:
        assert integrity.vouched_ids(s, "project") == {1, second, third}
        assert integrity.vouched_ids(s, "user") == {1}


def test_moving_the_legacy_boundary_over_forged_events_is_refused_and_reported(legacy):
    _create_project(legacy, "Second")
    raw(legacy, "INSERT INTO project (name, description, created_at) VALUES ('Forged', '', '2026-12-01 00:00:00')")
    with Session(legacy) as s:
        forged = s.exec(select(Project.id).where(Project.name == "Forged")).one()
    event = append_forged(legacy, action="project.create", entity="project", entity_id=str(forged), project_id=forged)
    raw(legacy, "UPDATE audit_anchor SET event_id = :e, head_hash = (SELECT hash FROM audit_event WHERE id = :e) "
        "WHERE entity = 'migration'", params={"e": event})
    with Session(legacy) as s:
        assert forged not in integrity.vouched_ids(s, "project")
    _create_project(legacy, "Third")
    problems = _problems(legacy)
    assert any("the checkpoint file places the last event before row hashes at #2, the database's 'migration' "
               f"anchor at #{event}: the anchor was edited." in p for p in problems), problems
    assert any("carries a row hash or HMAC although the 'migration' anchor places it before" in p for p in problems)


# --------------------------------------------------------------------------- genuine concurrent writers


def test_two_sessions_committing_in_turn_with_their_lines_out_of_order_verify_intact(engine, demo, monkeypatch):
    held: list = []
    write = audit.append_checkpoint
    with Session(engine) as one, Session(engine) as two:
        admin_one, admin_two = one.merge(demo["admin"]), two.merge(demo["admin"])
        made = [projects.create_project(one, actor=admin_one, name="One a").id,
                projects.create_project(two, actor=admin_two, name="Two a").id]
        # The first session's line is late: the second session commits and writes its own line before it.
        monkeypatch.setattr(audit, "append_checkpoint", lambda path, head: held.append((path, head)))
        made.append(projects.create_project(one, actor=admin_one, name="One b").id)
        monkeypatch.setattr(audit, "append_checkpoint", write)
        made.append(projects.create_project(two, actor=admin_two, name="Two b").id)
        write(*held.pop())
        made.append(projects.create_project(one, actor=admin_one, name="One c").id)
    report = verification.verify(engine, files=False)
    assert report.ok, report.lines()
    with Session(engine) as s:
        assert set(made) <= integrity.vouched_ids(s, "project")


def test_a_checkpoint_line_that_failed_to_write_is_written_with_the_next_commit(engine, demo, monkeypatch):
    write, failed = audit.append_checkpoint, []

    def full_disk(path, head):  # noqa: ANN001, ANN202
        failed.append(head)
        raise OSError("No space left on device")

    monkeypatch.setattr(audit, "append_checkpoint", full_disk)
    first = _create_project(engine, "Written late")
    monkeypatch.setattr(audit, "append_checkpoint", write)
    second = _create_project(engine, "Written on time")
    assert failed and verification.verify(engine, files=False).ok
    with Session(engine) as s:
        assert {first, second} <= integrity.vouched_ids(s, "project")


def test_checkpoint_ranges_merge_in_any_order_and_old_lines_cover_up_to_themselves():
    cov = audit.Coverage()
    for first, last in [(5, 6), (1, 2), (9, 9), (3, 4), (12, 14)]:
        cov.add(first, last, 0)
    cov.add(None, 7, None)  # a line written before issue 16
    assert (cov.starts, cov.ends, cov.newest, cov.legacy) == ([1, 9, 12], [6, 9, 14], 14, 0)
    assert [e for e in range(1, 17) if not cov.covers(e)] == [8, 10, 11, 15, 16]
