"""Ship: refused unless every criterion passed, a validator approved this very evaluation and a
fallback threshold is proposed; the moderation case (aggregate passes, a rare severe slice fails)."""

from __future__ import annotations

import pytest
from review_helpers import approve, lock_moderation_gate, make_evaluation, passing_predictions
from sqlmodel import select

from core.decision import decision
from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied
from core.evaluation.runs import load_report
from core.review import review
from core.store.models import AuditEvent, Decision


def _ship(session, demo, project, ev, rationale="meets the bar"):
    return decision.decide(session, actor=demo["sam"], project=project, decision="ship", rationale=rationale,
                           evaluation_id=ev.id)


def test_moderation_case_aggregate_passes_but_the_rare_slice_fails_and_ship_is_refused(
        session, demo, gated, failing_eval):
    report = load_report(session, failing_eval)
    status = {c.name: c.status for c in report.criteria}
    assert status["quality floor (accuracy vs teacher)"] == "PASS"
    assert status["slice category=threat"] == "FAIL" and not report.passed
    with pytest.raises(GovernanceViolation, match=r"slice category=threat \(FAIL\)"):
        _ship(session, demo, gated, failing_eval)
    assert session.exec(select(Decision)).all() == []


def test_ship_after_approval_and_threshold(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    row = _ship(session, demo, gated, passing_eval)
    assert (row.decision, row.round, row.evaluation_hash) == ("ship", 1, passing_eval.report_hash)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "decision.record")).one()
    assert '"decision":"ship"' in event.payload


def test_ship_without_approval_or_threshold_names_both(session, demo, gated, passing_eval):
    with pytest.raises(GovernanceViolation) as err:
        _ship(session, demo, gated, passing_eval)
    assert "no validator has approved this evaluation" in str(err.value)
    assert "no fallback threshold" in str(err.value)


def test_approving_evaluation_a_does_not_allow_shipping_evaluation_b(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    other = make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions(seed=9))
    review.propose_threshold(session, actor=demo["oscar"], project=gated, evaluation_id=other.id, threshold=0.5)
    with pytest.raises(GovernanceViolation, match=f"no validator has approved this evaluation \\(hash "
                                                   f"{other.report_hash[:16]}"):
        _ship(session, demo, gated, other)


def test_tampered_report_cannot_ship(session, demo, gated, passing_eval):
    from core.store import artifacts
    from core.store.models import Artifact

    approve(session, demo, gated, passing_eval)
    path = artifacts.path_of(session.get(Artifact, passing_eval.report_artifact_id))
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(GovernanceViolation, match="no longer matches"):
        _ship(session, demo, gated, passing_eval)


def test_evaluation_under_a_superseded_gate_cannot_ship(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    lock_moderation_gate(session, demo, gated, min_reviews_per_critical_slice=6)
    with pytest.raises(GovernanceViolation, match="superseded by version 2"):
        _ship(session, demo, gated, passing_eval)


def test_only_the_sponsor_decides_and_needs_a_rationale(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    with pytest.raises(PermissionDenied, match="Only a sponsor"):
        decision.decide(session, actor=demo["val"], project=gated, decision="ship", rationale="ok",
                        evaluation_id=passing_eval.id)
    with pytest.raises(InvalidInput, match="needs a rationale"):
        _ship(session, demo, gated, passing_eval, rationale="  ")
    with pytest.raises(InvalidInput, match="not one of ship, iterate, kill"):
        decision.decide(session, actor=demo["sam"], project=gated, decision="launch", rationale="x",
                        evaluation_id=passing_eval.id)


def test_a_shipped_project_takes_no_further_decision(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    _ship(session, demo, gated, passing_eval)
    with pytest.raises(GovernanceViolation, match="decided ship in round 1"):
        decision.decide(session, actor=demo["sam"], project=gated, decision="kill", rationale="changed mind")


def test_evidence_gathers_what_the_sponsor_decides_on(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    ev = decision.evidence(session, project=gated)
    assert ev.evaluation.id == passing_eval.id and ev.passed and ev.ship_blockers == []
    assert [s.approve for s in ev.sign_offs] == [True] and ev.threshold.threshold == 0.5
    latency = next(t for t in ev.targets if t.name.startswith("p95"))
    assert (latency.value, latency.met) == (4.0, True)
    assert ev.payback_months is not None and ev.round == 1 and len(ev.rounds) == 1


def test_a_later_rejection_withdraws_the_approval(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id, approve=False,
                    comment="found a leak")
    with pytest.raises(GovernanceViolation, match="no validator has approved.*rejected it, the last saying "
                                                   "'found a leak'"):
        _ship(session, demo, gated, passing_eval)
