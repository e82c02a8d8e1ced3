"""Rules the review and audit pages used to hold now live in core: who may propose the fallback threshold, the
heatmap's worst-first order, and which audit scopes a person may open."""

from __future__ import annotations

import pytest

from core.access import projects, visibility
from core.domain.errors import PermissionDenied
from core.domain.report import EvaluationReport
from core.review import review


def test_a_driver_who_is_also_operator_cannot_propose_the_threshold(session, demo, gated, failing_eval):
    projects.assign_role(session, actor=demo["admin"], project=gated, username="dana", role="operator")
    assert "drives it" in review.threshold_refusal(session, actor=demo["dana"], project=gated)
    with pytest.raises(PermissionDenied, match="who does not drive it"):
        review.propose_threshold(session, actor=demo["dana"], project=gated, evaluation_id=failing_eval.id,
                                 threshold=0.7)
    assert review.threshold_refusal(session, actor=demo["oscar"], project=gated) is None
    assert review.threshold_refusal(session, actor=demo["val"], project=gated) is None


def test_heatmap_rows_are_worst_gap_first():
    report = EvaluationReport.model_validate({"overall": {"student": {"agreement": 0.95}}, "slices": [
        {"column": "lang", "value": "en", "n": 900, "student": {"accuracy": 0.96, "macro_f1": 0.9, "agreement": 0.96},
         "teacher": {"accuracy": 0.97, "macro_f1": 0.91}},
        {"column": "lang", "value": "de", "n": 100, "student": {"accuracy": 0.90, "macro_f1": 0.85,
                                                                "agreement": 0.80},
         "teacher": {"accuracy": 0.95, "macro_f1": 0.9}},
    ]})
    rows = review.heatmap_rows(report)
    assert [r.label for r in rows] == ["lang=de (n=100)", "lang=en (n=900)"]
    assert rows[0].worst == pytest.approx(-0.15) and rows[0].gaps[2] == pytest.approx(-0.15)
    assert review.heatmap_rows(report, limit=1)[0].label.startswith("lang=de")


def test_audit_scopes_everything_only_for_admins(session, demo, gated):
    assert visibility.audit_scopes(session, viewer=demo["admin"])[0] is None
    scopes = visibility.audit_scopes(session, viewer=demo["sam"])
    assert None not in scopes and gated.id in scopes
    with pytest.raises(PermissionDenied, match="Only an admin"):
        visibility.visible_events(session, viewer=demo["sam"], project_id=None)
