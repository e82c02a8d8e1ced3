"""Anchors the chain cannot forge by itself: anchor rows, the checkpoint file and an expected head (issue 9).

Each attack edits the database as its file's owner could (triggers dropped, hashes recomputed); each of these
verified as intact before anchors existed.
"""

from __future__ import annotations

import json

import pytest
from audit_attacks import append_forged, raw, rechain
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session, select

from core.cli import cli
from core.domain.errors import InvalidInput
from core.store import audit, verification
from core.store.models import AuditAnchor, AuditEvent


def _last_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT max(id) FROM audit_event")).scalar()


def test_an_untouched_record_verifies_and_lists_what_it_cannot_detect(engine, gated):
    report = verification.verify(engine)
    assert report.ok, report.lines()
    assert "anchors, checkpoints, records and artifact files agree" in report.sentence()
    assert any("without STILLROOM_AUDIT_KEY" in limit for limit in report.limits)


def test_gate_signoff_and_decision_events_store_the_head_as_anchors(session, engine, gated):
    lock = session.exec(select(AuditEvent).where(AuditEvent.action == "gate.lock", AuditEvent.project_id == gated.id)
                        ).one()
    anchor = session.exec(select(AuditAnchor).where(AuditAnchor.event_id == lock.id)).one()
    assert (anchor.head_hash, anchor.entity, anchor.entity_id) == (lock.hash, "gate", lock.entity_id)


def test_the_checkpoint_file_follows_every_commit_that_adds_events(session, engine, gated):
    lines = [json.loads(x) for x in audit.checkpoint_path(engine).read_text().splitlines()]
    with Session(engine) as s:
        head = s.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        count = len(s.exec(select(AuditEvent.id)).all())
    assert (lines[-1]["event_id"], lines[-1]["head_hash"], lines[-1]["count"]) == (head.id, head.hash, count)


def test_tail_truncation_is_reported(engine, gated):
    last = _last_id(engine)
    raw(engine, f"DELETE FROM audit_event WHERE id > {last - 3}")
    assert verification.verify_chain(engine).ok  # the links alone cannot tell
    report = verification.verify(engine)
    assert not report.ok
    assert any(f"(event #{last}," in p and "no longer has: events were deleted" in p for p in report.problems)


def test_a_forged_decision_event_appended_with_correct_hashes_is_reported(engine, gated):
    forged = append_forged(engine, action="decision.record", entity="decision", entity_id="99",
                           project_id=gated.id, payload='{"decision":"ship","round":1}')
    assert verification.verify_chain(engine).ok
    report = verification.verify(engine)
    assert not report.ok
    assert any(f"event #{forged} (decision.record) has no anchor" in p for p in report.problems)
    assert any(f"goes on after the newest checkpoint (event #{forged - 1}) to event #{forged}" in p
               for p in report.problems)


def test_deleting_every_event_is_reported(engine, gated):
    raw(engine, "DELETE FROM audit_event")
    assert verification.verify_chain(engine).ok
    report = verification.verify(engine)
    assert not report.ok
    assert any("no longer has: events were deleted" in p for p in report.problems)
    assert any("has no audit event" in p for p in report.problems)  # every row is now unvouched


def test_a_rewrite_from_any_point_disagrees_with_checkpoint_and_anchor(engine, gated):
    with engine.connect() as conn:
        lock_id = conn.execute(text("SELECT max(id) FROM audit_event WHERE action = 'gate.lock'")).scalar()
    raw(engine, f"UPDATE audit_event SET actor = 'mallory' WHERE id = {lock_id - 1}")
    rechain(engine, from_id=lock_id - 1)
    assert verification.verify_chain(engine).ok
    report = verification.verify(engine)
    assert not report.ok
    assert "disagrees with the chain: it was rewritten" in report.problem


def test_a_rewrite_that_also_rewrites_the_checkpoint_file_is_named_by_the_first_anchor(engine, gated):
    with engine.connect() as conn:
        lock_id = conn.execute(text("SELECT max(id) FROM audit_event WHERE action = 'gate.lock'")).scalar()
        anchor_id = conn.execute(text(f"SELECT id FROM audit_anchor WHERE event_id = {lock_id}")).scalar()
    raw(engine, f"UPDATE audit_event SET actor = 'mallory' WHERE id = {lock_id - 1}")
    rechain(engine, from_id=lock_id - 1)
    path = audit.checkpoint_path(engine)
    path.unlink()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id")).all()
    audit.append_checkpoint(path, {"event_id": rows[-1][0], "head_hash": rows[-1][1], "count": len(rows)})
    report = verification.verify(engine)
    assert not report.ok
    assert report.problem.startswith(f"anchor #{anchor_id} (gate ")
    assert f"at event #{lock_id}) disagrees with the chain" in report.problem


def test_expect_head_reports_the_events_that_follow_it(engine, gated):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT hash FROM audit_event ORDER BY id")).scalars().all()
    report = verification.verify(engine, expect_head=rows[-4])
    assert report.ok and report.following == 3
    assert "3 event(s) follow it" in report.sentence()
    missing = verification.verify(engine, expect_head="ab" * 32)
    assert not missing.ok and "is not in the chain" in missing.problem
    with pytest.raises(InvalidInput, match="not a 64-character hex hash"):
        verification.verify(engine, expect_head=rows[-1][:16])


def test_cli_verify_takes_an_expected_head_and_exports_checkpoints(engine, gated, tmp_path):
    with engine.connect() as conn:
        head = conn.execute(text("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")).scalar()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--expect-head", head])
    assert ok.exit_code == 0 and "0 event(s) follow it" in ok.output and "Cannot detect:" in ok.output
    bad = runner.invoke(cli, ["audit", "verify", "--expect-head", "cd" * 32])
    assert bad.exit_code == 3 and "is not in the chain" in bad.output
    out = tmp_path / "kept.jsonl"
    exported = runner.invoke(cli, ["audit", "checkpoint", "export", "--out", str(out)])
    assert exported.exit_code == 0
    assert json.loads(out.read_text().splitlines()[-1])["head_hash"] == head


@pytest.mark.parametrize("line", ["not json", '{"event_id": 1}'])
def test_an_edited_checkpoint_file_is_reported(engine, gated, line):
    with open(audit.checkpoint_path(engine), "a") as f:
        f.write(line + "\n")
    report = verification.verify(engine)
    assert not report.ok and "is not a checkpoint: the file was edited" in report.problem
