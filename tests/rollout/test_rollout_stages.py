"""Rollout stage rules: a ship decision first, shadow first, advance only on passing logged traffic,
rollback with a reason, operators only."""

from __future__ import annotations

import json

import pytest
from monitor_helpers import ship, traffic, write_log
from sqlmodel import select

from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied
from core.review import review
from core.rollout import config, rollout
from core.store.models import AuditEvent, RolloutEvent


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def test_cannot_start_without_a_ship_decision(session, demo, gated, passing_eval):
    with pytest.raises(GovernanceViolation, match="no decision has been taken"):
        rollout.start(session, actor=demo["oscar"], project=gated, reason="go")
    assert rollout.history(session, project_id=gated.id) == []


def test_only_the_operator_starts(session, demo, shipped):
    with pytest.raises(PermissionDenied, match="Only an operator"):
        rollout.start(session, actor=demo["dana"], project=shipped, reason="go")


def test_start_is_in_shadow_with_the_threshold_in_force(session, demo, shipped):
    assert rollout.current_stage(session, project_id=shipped.id) == "off"
    row = rollout.start(session, actor=demo["oscar"], project=shipped, reason="go")
    proposal = review.threshold_proposals(session, evaluation_id=row.evaluation_id)[-1]
    assert (row.action, row.stage, row.threshold) == ("start", "shadow", proposal.threshold)
    state = rollout.state(session, project_id=shipped.id)
    assert (state.stage, state.percent, state.threshold) == ("shadow", 0, 0.5)
    assert state.must_escalate == ["threat"] and state.teacher_sample_rate == 0.05
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "rollout.start")).one()
    assert json.loads(event.payload)["stage"] == "shadow"
    with pytest.raises(GovernanceViolation, match="already at stage shadow"):
        rollout.start(session, actor=demo["oscar"], project=shipped, reason="again")


def test_advance_refused_with_too_little_or_disagreeing_traffic(session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(50, stage="shadow"))
    with pytest.raises(GovernanceViolation, match=r"requests: waiting for traffic: 50 of 200 requests"):
        rollout.advance(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(250, stage="shadow", disagree_every=5))
    check = rollout.check_advance(session, project_id=shipped.id)
    status = {c.name: c.status for c in check.criteria}
    assert status["requests"] == "PASS" and status["student-teacher agreement"] == "FAIL"
    assert status["agreement category=ok"] == "FAIL"
    agreement = next(c for c in check.criteria if c.name == "student-teacher agreement")
    assert agreement.value == pytest.approx(1 - 50 / 300, abs=1e-6) and agreement.threshold == 0.95
    with pytest.raises(GovernanceViolation, match="student-teacher agreement 0.8333 vs 0.95"):
        rollout.advance(session, actor=demo["oscar"], project=shipped)
    assert rollout.current_stage(session, project_id=shipped.id) == "shadow"
    assert len(rollout.history(session, project_id=shipped.id)) == 1


def test_with_no_traffic_the_criteria_wait_instead_of_failing(session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped)
    check = rollout.check_advance(session, project_id=shipped.id)
    status = {c.name: c.status for c in check.criteria}
    assert "FAIL" not in status.values(), status
    assert status["requests"] == status["student-teacher agreement"] == status["fallback rate"] == rollout.WAITING
    assert all(c.detail.startswith("waiting for traffic") for c in check.criteria if c.status == rollout.WAITING)
    assert not check.passed
    with pytest.raises(GovernanceViolation, match="waiting for traffic: 0 of 200 requests"):
        rollout.advance(session, actor=demo["oscar"], project=shipped)


def test_the_operator_is_offered_only_the_actions_the_stage_allows():
    order = ["shadow", "5", "25", "100"]
    assert rollout.actions("off", order) == ["start"]
    assert rollout.actions("shadow", order) == ["advance", "rollback"]
    assert rollout.actions("100", order) == ["rollback"]


def test_advance_goes_one_stage_on_passing_traffic(session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(240, stage="shadow"))
    row = rollout.advance(session, actor=demo["oscar"], project=shipped, reason="shadow looks good")
    assert row.stage == "5" and row.criteria["passed"] is True
    names = {c["name"]: c for c in row.criteria["criteria"]}
    assert names["requests"]["value"] == 240 and names["student-teacher agreement"]["value"] == 1.0
    assert names["p95 latency (ms)"]["status"] == "N/A"  # the teacher serves in shadow
    assert names["agreement category=ok"]["status"] == "PASS"
    # Traffic of the shadow stage does not count for the 5 % stage.
    with pytest.raises(GovernanceViolation, match="waiting for traffic: 0 of 200 requests logged at stage 5"):
        rollout.advance(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(240, stage="5", latency_ms=80.0))
    with pytest.raises(GovernanceViolation, match=r"p95 latency \(ms\) 80 vs 50"):
        rollout.advance(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(5000, stage="5", latency_ms=4.0))  # the slow 240 fall under 5 %
    assert rollout.advance(session, actor=demo["oscar"], project=shipped).stage == "25"


def test_configured_stages_are_followed(session, demo, shipped):
    config.set_config(session, actor=demo["oscar"], project=shipped, changes={"stages": "shadow,50,100"})
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(240, stage="shadow"))
    assert rollout.advance(session, actor=demo["oscar"], project=shipped).stage == "50"
    assert rollout.state(session, project_id=shipped.id).percent == 50


def test_rollback_needs_a_reason_and_is_recorded(session, demo, shipped):
    with pytest.raises(GovernanceViolation, match="nothing to roll back"):
        rollout.rollback(session, actor=demo["oscar"], project=shipped, reason="oops")
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(240, stage="shadow"))
    rollout.advance(session, actor=demo["oscar"], project=shipped)
    with pytest.raises(InvalidInput, match="needs a reason"):
        rollout.rollback(session, actor=demo["oscar"], project=shipped, reason="  ")
    with pytest.raises(PermissionDenied):
        rollout.rollback(session, actor=demo["sam"], project=shipped, reason="nervous")
    back = rollout.rollback(session, actor=demo["oscar"], project=shipped, reason="latency spike", to="previous")
    assert (back.stage, back.reason, back.criteria["from"]) == ("shadow", "latency spike", "5")
    off = rollout.rollback(session, actor=demo["oscar"], project=shipped, reason="teacher outage")
    assert off.stage == "off" and rollout.state(session, project_id=shipped.id).percent == 0
    actions = [e.action for e in session.exec(select(RolloutEvent).order_by(RolloutEvent.id)).all()]
    assert actions == ["start", "advance", "rollback", "rollback"]
    payloads = [json.loads(e.payload) for e in session.exec(
        select(AuditEvent).where(AuditEvent.action == "rollout.rollback")).all()]
    assert [p["reason"] for p in payloads] == ["latency spike", "teacher outage"]
    # From off the next start is in shadow again: no stage is ever skipped.
    assert rollout.start(session, actor=demo["oscar"], project=shipped).stage == "shadow"
