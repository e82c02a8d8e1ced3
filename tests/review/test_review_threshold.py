"""The fallback curve over confidence thresholds, and the proposed threshold for rollout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from review_helpers import moderation_predictions
from sqlmodel import select

from core.domain import economics
from core.domain.errors import InvalidInput, PermissionDenied
from core.evaluation.runs import load_predictions
from core.review import review
from core.store.models import AuditEvent

COSTS = economics.student_cost(teacher_per_1k=4.0, declared_per_1k=0.4)


def _naive(df: pd.DataFrame, t: float) -> tuple[float, float | None]:
    served = df[df.student_confidence >= t]
    truth = served.reference.where(served.reference.notna(), served.teacher_label)
    return len(served) / len(df), (float((served.student_label == truth).mean()) if len(served) else None)


def test_curve_matches_a_row_by_row_computation():
    df = moderation_predictions(n=500)
    df.loc[df.index[:50], "reference"] = None  # no reference: scored against the teacher
    df.loc[df.index[50:55], "student_confidence"] = np.nan  # no confidence: always falls back
    curve = review.fallback_curve(df, COSTS)
    assert len(curve) == 101 and curve.threshold.iloc[-1] == 1.0
    for _, row in curve.iloc[::7].iterrows():
        share, acc = _naive(df, row.threshold)
        assert row.served_share == pytest.approx(share)
        assert row.fallback_rate == pytest.approx(1 - share)
        assert (np.isnan(row.student_accuracy) if acc is None else row.student_accuracy == pytest.approx(acc))
        assert row.blended_cost_per_1k == pytest.approx(share * 0.4 + (1 - share) * 4.0)
    assert curve.served_share.iloc[0] == pytest.approx(495 / 500)


def test_curve_without_costs_leaves_cost_empty():
    assert review.fallback_curve(moderation_predictions(n=50), None).blended_cost_per_1k.isna().all()


def test_operator_proposes_a_threshold_with_its_figures(session, demo, gated, failing_eval):
    row = review.propose_threshold(session, actor=demo["oscar"], project=gated, evaluation_id=failing_eval.id,
                                   threshold=0.7)
    share, acc = _naive(load_predictions(session, failing_eval), 0.7)
    assert row.served_share == pytest.approx(share) and row.student_accuracy == pytest.approx(acc)
    # The qualification's figures: student 0.4, teacher 4.0 per 1,000.
    assert row.blended_cost_per_1k == pytest.approx(share * 0.4 + (1 - share) * 4.0)
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "review.threshold")).one()


def test_validator_may_propose_but_driver_and_sponsor_may_not(session, demo, gated, failing_eval):
    review.propose_threshold(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                             threshold=0.5)
    for who in ("dana", "sam"):
        with pytest.raises(PermissionDenied, match="validator or an operator"):
            review.propose_threshold(session, actor=demo[who], project=gated, evaluation_id=failing_eval.id,
                                     threshold=0.5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high"])
def test_threshold_outside_zero_to_one_is_refused(session, demo, gated, failing_eval, bad):
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        review.propose_threshold(session, actor=demo["oscar"], project=gated, evaluation_id=failing_eval.id,
                                 threshold=bad)


def test_evaluation_curve_is_priced_from_the_qualification(session, gated, failing_eval):
    curve = review.evaluation_curve(session, project=gated, evaluation_id=failing_eval.id)
    first = curve.iloc[0]  # threshold 0: the student serves everything it has a confidence for
    assert first.blended_cost_per_1k == pytest.approx(first.served_share * 0.4 + first.fallback_rate * 4.0)
