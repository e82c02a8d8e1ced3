"""Records behind the events: rows edited or forged with raw SQL are reported by verify and ignored by every
governance reader; a locked gate edited behind its trigger refuses evaluate, decide and rollout (issue 9)."""

from __future__ import annotations

import json

import pytest
from audit_attacks import raw
from review_helpers import approve
from sqlalchemy import text
from sqlmodel import Session, select

from core.access import people
from core.decision import decision, portfolio, record
from core.domain import hashing
from core.domain.errors import GateTampered, GovernanceViolation
from core.evaluation import runs
from core.evaluation.runs import load_report
from core.gate import gate
from core.review import review
from core.rollout import rollout
from core.store import audit, integrity, verification
from core.store.models import Artifact, Decision, GateVersion, SignOff


def _problems(engine) -> list[str]:
    report = verification.verify(engine)
    assert not report.ok
    return report.problems


def test_a_sign_off_flipped_to_approve_is_reported_and_does_not_count(session, engine, demo, gated, passing_eval):
    row = review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id, approve=False,
                          comment="the threats need another look")
    raw(engine, f"UPDATE sign_off SET approve = 1 WHERE id = {row.id}")
    assert any(f"sign_off #{row.id} differs from what event #" in p for p in _problems(engine))
    session.expire_all()
    assert review.sign_offs(session, evaluation_id=passing_eval.id) == []
    blockers = decision.ship_blockers(session, project=gated, evaluation=passing_eval,
                                      report=load_report(session, passing_eval))
    assert any("no validator has approved" in b for b in blockers)


def test_forged_ship_decision_and_approval_are_reported_and_ignored(session, engine, demo, gated, failing_eval):
    review.propose_threshold(session, actor=demo["oscar"], project=gated, evaluation_id=failing_eval.id,
                             threshold=0.5)
    val, sam = demo["val"].id, demo["sam"].id
    raw(engine,
        "INSERT INTO sign_off (project_id, evaluation_id, evaluation_hash, approve, comment, validator_id, "
        f"created_at) VALUES ({gated.id}, {failing_eval.id}, '{failing_eval.report_hash}', 1, '', {val}, "
        "'2026-12-01 00:00:00')",
        "INSERT INTO decision (project_id, round, decision, rationale, evaluation_id, evaluation_hash, data_request, "
        f"created_by, created_at) VALUES ({gated.id}, 1, 'ship', 'forged', {failing_eval.id}, "
        f"'{failing_eval.report_hash}', '{{}}', {sam}, '2026-12-01 00:00:00')")
    problems = _problems(engine)
    assert any(p.startswith("sign_off #") and "has no audit event" in p for p in problems)
    assert any(p.startswith("decision #") and "has no audit event" in p for p in problems)
    session.expire_all()
    assert session.exec(select(Decision)).all() and session.exec(select(SignOff)).all()  # the rows are there
    with pytest.raises(GovernanceViolation, match="no decision has been taken"):
        rollout.start(session, actor=demo["oscar"], project=gated)
    blockers = decision.ship_blockers(session, project=gated, evaluation=failing_eval,
                                      report=load_report(session, failing_eval))
    assert any("no validator has approved" in b for b in blockers)
    status = {p.name: p for p in portfolio.portfolio(session, user=demo["sam"])}[gated.name]
    assert "Shipped" not in status.status
    md = record.export(session, actor=demo["sam"], project=gated, fmt="md")
    assert "forged" not in md


@pytest.mark.parametrize("rehash", [False, True], ids=["spec-only", "spec-and-hash"])
def test_a_locked_gate_edited_behind_its_trigger_refuses_evaluate_decide_and_rollout(
        session, engine, demo, gated, passing_eval, rehash):
    approve(session, demo, gated, passing_eval)
    g = gate.current(session, project_id=gated.id)
    spec = json.loads(g.spec_json)  # the stored text, tampered below
    spec["slice_floors"] = [dict(f, floor=0.0) for f in spec["slice_floors"]]
    spec_json = hashing.canonical_json(spec)
    new_hash = integrity.spec_hash(project_id=g.project_id, version=g.version, spec_json=spec_json, reason=g.reason,
                              supersedes=g.supersedes_hash) if rehash else g.content_hash
    raw(engine, "UPDATE gate_version SET spec_json = :s, content_hash = :h WHERE id = :i",
        params={"s": spec_json, "h": new_hash, "i": g.id})
    session.expire_all()
    with pytest.raises(GateTampered, match=f"Gate version {g.version} of project #{gated.id} was changed"):
        runs.require_can_evaluate(session, actor=demo["dana"], project=gated)
    with pytest.raises(GateTampered):
        decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                        evaluation_id=passing_eval.id)
    assert any(f"gate_version #{g.id} differs" in p for p in _problems(engine))


def test_rollout_refuses_a_shipped_evaluation_whose_gate_was_edited(session, engine, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                    evaluation_id=passing_eval.id)
    g = session.get(GateVersion, passing_eval.gate_version_id)
    raw(engine, f"UPDATE gate_version SET reason = 'edited' WHERE id = {g.id}")
    session.expire_all()
    with pytest.raises(GateTampered):
        rollout.start(session, actor=demo["oscar"], project=gated)


def test_changed_and_missing_artifact_files_are_reported(session, engine, demo, gated, passing_eval):
    from core.store.artifacts import path_of

    preds = session.get(Artifact, passing_eval.predictions_artifact_id)
    report = session.get(Artifact, passing_eval.report_artifact_id)
    with open(path_of(preds), "ab") as f:
        f.write(b"\0")
    path_of(report).unlink()
    problems = _problems(engine)
    assert any(f"artifact #{preds.id} ({preds.kind})" in p and "no longer has its recorded SHA-256" in p
               for p in problems)
    assert any(f"artifact #{report.id} (evaluation-report) is missing" in p for p in problems)
    assert verification.verify(engine, files=False).ok  # the file check is the part --no-files skips


def test_an_artifact_row_without_its_event_is_reported(session, engine, demo, gated, passing_eval):
    preds = session.get(Artifact, passing_eval.predictions_artifact_id)
    raw(engine, f"UPDATE artifact SET sha256 = '{'0' * 64}' WHERE id = {preds.id}")
    assert any(f"artifact #{preds.id} differs from what event #" in p for p in _problems(engine))


def test_user_and_role_edits_with_raw_sql_are_reported(session, engine, demo, moderation):
    dana, val = demo["dana"], demo["val"]
    with engine.connect() as conn:
        gone = conn.execute(text(f"SELECT id FROM role_assignment WHERE user_id = {val.id} "
                                 f"AND project_id = {moderation.id}")).scalar()
    raw(engine,
        f"UPDATE user SET is_admin = 1 WHERE id = {dana.id}",
        f"INSERT INTO role_assignment (project_id, user_id, role, assigned_at) VALUES ({moderation.id}, {dana.id}, "
        "'operator', '2026-12-01 00:00:00')",
        f"DELETE FROM role_assignment WHERE id = {gone}")
    problems = _problems(engine)
    assert any(f"user #{dana.id} differs from what event #" in p for p in problems)
    assert any(p.startswith("role_assignment #") and "has no audit event" in p for p in problems)
    assert any(f"role_assignment #{gone}, recorded by event #" in p and "is gone" in p for p in problems)


def test_admin_changes_through_core_are_audited_and_verify(session, engine, demo):
    people.set_admin(session, actor=demo["admin"], username="dana", admin=True)
    event = session.exec(select(audit.AuditEvent).where(audit.AuditEvent.action == "user.admin")).one()
    assert json.loads(event.payload) == {"username": "dana", "is_admin": True}
    people.set_admin(session, actor=demo["admin"], username="dana", admin=False)
    assert verification.verify(engine).ok


def test_vouched_ids_reads_the_chain_not_the_row(session, engine, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    with Session(engine) as s:
        ok = integrity.vouched_ids(s, "sign_off", project_ids=[gated.id])
    signed = session.exec(select(SignOff.id)).all()
    assert set(signed) == ok


def test_a_rollout_stage_inserted_with_raw_sql_routes_no_traffic(session, engine, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                    evaluation_id=passing_eval.id)
    rollout.start(session, actor=demo["oscar"], project=gated)
    raw(engine, "INSERT INTO rollout_event (project_id, action, stage, evaluation_id, threshold, reason, criteria, "
                f"created_by, created_at) VALUES ({gated.id}, 'advance', '100', {passing_eval.id}, 0.5, '', '{{}}', "
                f"{demo['oscar'].id}, '2026-12-01 00:00:00')")
    session.expire_all()
    assert rollout.state(session, project_id=gated.id).stage == "shadow"
    assert any(p.startswith("rollout_event #") and "has no audit event" in p for p in _problems(engine))
