"""Payback at decision time: recomputed from the student's measured cost and the proposed fallback rate, not
copied from the qualification, and judged against the gate's payback window as a real criterion."""

from __future__ import annotations

import pytest
from review_helpers import approve, lock_moderation_gate, make_evaluation, passing_predictions

from core.decision import decision, record
from core.domain import economics
from core.domain.errors import GovernanceViolation
from core.qualify import qualification
from core.review import review

INPUTS = {"monthly_volume": 1_000_000, "teacher_cost_per_1k": 4.0, "build_cost": 10_000.0,
          "student_cost_per_1k": 0.4}


def _cost(student_per_1k: float) -> economics.StudentCost:
    """The student's cost as an evaluation report states it, beside the qualification's teacher cost."""
    return economics.student_cost(teacher_per_1k=INPUTS["teacher_cost_per_1k"], declared_per_1k=student_per_1k)


def test_payback_uses_the_measured_cost_and_the_fallback_rate():
    # the qualification guessed 0.4 per 1,000; the evaluation measured 2.0 and half the traffic falls back
    got = decision.payback_of(inputs=INPUTS, cost=_cost(2.0), fallback_rate=0.5, window=6.0)
    assert got.blended_per_1k == pytest.approx(3.0) and got.monthly_saving == pytest.approx(1000.0)
    assert got.months == pytest.approx(10.0)  # the qualification's estimate was 2.8 months
    assert got.criterion.status == "FAIL" and "exceeds the gate's window of 6 months" in got.criterion.detail
    within = decision.payback_of(inputs=INPUTS, cost=_cost(2.0), fallback_rate=0.0, window=6.0)
    assert (within.months, within.criterion.status) == (pytest.approx(5.0), "PASS")


def test_no_saving_never_pays_back_and_missing_figures_are_insufficient():
    never = decision.payback_of(inputs=INPUTS, cost=_cost(5.0), fallback_rate=0.2, window=12.0)
    assert never.months is None and never.criterion.status == "FAIL" and "never pays back" in \
        never.criterion.detail
    unknown = decision.payback_of(inputs=INPUTS, cost=_cost(0.4), fallback_rate=None, window=12.0)
    assert unknown.criterion.status == "INSUFFICIENT DATA" and "fallback threshold" in unknown.criterion.detail


def test_ship_is_refused_when_payback_exceeds_the_gates_window(session, demo, qualified):
    lock_moderation_gate(session, demo, qualified, payback_months=1.0)
    ev = make_evaluation(session, project=qualified, actor=demo["dana"], df=passing_predictions())
    approve(session, demo, qualified, ev, threshold=0.5)
    evidence = decision.evidence(session, project=qualified)
    proposal = review.threshold_proposals(session, evaluation_id=ev.id)[-1]
    expected = decision.payback_of(inputs=INPUTS, cost=_cost(0.4), fallback_rate=proposal.fallback_rate,
                                   window=1.0).months
    assert evidence.payback_months == pytest.approx(expected)
    assert evidence.payback_months != qualification.latest(session, project_id=qualified.id).payback_months
    assert any(b.startswith("payback window FAIL") for b in evidence.ship_blockers)
    with pytest.raises(GovernanceViolation, match="exceeds the gate's window of 1 months"):
        decision.decide(session, actor=demo["sam"], project=qualified, decision="ship", rationale="go",
                        evaluation_id=ev.id)
    text = record.export(session, actor=demo["sam"], project=qualified, fmt="md")
    assert f"Payback of evaluation #{ev.id} at its proposed threshold, computed now (FAIL)" in text.replace("\\", "")


def test_a_higher_threshold_means_more_fallback_and_a_longer_payback(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval, threshold=0.3)
    short = decision.evidence(session, project=gated).payback_months
    review.propose_threshold(session, actor=demo["oscar"], project=gated, evaluation_id=passing_eval.id,
                             threshold=0.95)
    longer = decision.evidence(session, project=gated).payback_months
    assert longer > short
