"""One slice-sufficiency rule for the gate check and the iterate data request: a slice with too few scored
holdout rows is INSUFFICIENT DATA in both, and the data request then asks for HOLDOUT examples, never training
examples. Attacked as in issue 9: a slice with enough rows but too few of them labelled."""

from __future__ import annotations

import pandas as pd
from review_helpers import moderation_gate, moderation_predictions

from core.decision import decision
from core.domain.gate_spec import GateSpec
from core.domain.report import EvaluationReport
from core.evaluation import gate_check, report


def _report(df: pd.DataFrame) -> tuple[GateSpec, EvaluationReport]:
    spec = GateSpec(**moderation_gate())  # category=threat: floor 0.9 on at least 30 holdout rows
    scored = report.score(df, spec=spec, slices=["category", "language"], labels=None, baselines={})
    body, _ = report.assemble(scored, spec=spec, evaluation={"n": len(df)}, latency={}, cost={})
    return spec, body


def test_a_slice_with_too_few_labelled_rows_asks_for_holdout_examples():
    df = moderation_predictions(n=1000, n_threat=40, threat_wrong=8)
    df.loc[df.index[:20], "reference"] = None  # 40 threat rows, only 20 of them labelled
    spec, body = _report(df)
    threat = body.slice_criterion("category", "threat")
    assert (threat.status, threat.n) == (gate_check.INSUFFICIENT, 20)
    [wanted] = [w for w in decision.data_request(spec, body, round_=1).slices if w.column == "category"]
    assert (wanted.status, wanted.for_, wanted.n, wanted.more_examples) == (
        gate_check.INSUFFICIENT, "holdout", 20, 10)
    assert "not to the training data" in wanted.why


def test_the_gate_and_the_data_request_agree_on_every_slice():
    spec, body = _report(moderation_predictions(n=1000, n_threat=40, threat_wrong=8))
    [wanted] = [w for w in decision.data_request(spec, body, round_=1).slices if w.column == "category"]
    threat = body.slice_criterion("category", "threat")
    assert (threat.status, wanted.status, wanted.for_) == (gate_check.FAIL, gate_check.FAIL, "training")
    assert gate_check.slice_sufficient(threat.n, 30) and not gate_check.slice_sufficient(29, 30)


def _severe_report(df: pd.DataFrame) -> tuple[GateSpec, EvaluationReport]:
    gate = {**moderation_gate(), "slice_floors": [],
            "severe_errors": {"classes": ["threat"], "max_rate": 0.05, "min_n": 30}}
    spec = GateSpec(**gate)
    scored = report.score(df, spec=spec, slices=["category", "language"], labels=None, baselines={})
    body, _ = report.assemble(scored, spec=spec, evaluation={"n": len(df)}, latency={}, cost={})
    return spec, body


def test_a_severe_class_failure_asks_for_training_examples_of_that_class():
    # Issue 19: an iterate after a severe-class failure stored {"slices": []}: the driver saw no request.
    spec, body = _severe_report(moderation_predictions(n=1000, n_threat=40, threat_wrong=8))
    assert next(c for c in body.criteria if c.name == gate_check.SEVERE).status == gate_check.FAIL
    request = decision.data_request(spec, body, round_=1)
    [wanted] = request.slices
    assert (wanted.column, wanted.value, wanted.for_, wanted.status) == ("reference", "threat", "training", "FAIL")
    assert wanted.more_examples == decision.MIN_EXTRA_EXAMPLES and "threat" in wanted.sentence()
    assert gate_check.SEVERE in request.failing_criteria


def test_too_few_severe_items_asks_the_holdout_for_the_shortfall():
    spec, body = _severe_report(moderation_predictions(n=1000, n_threat=10, threat_wrong=1))
    [wanted] = decision.data_request(spec, body, round_=1).slices
    assert (wanted.for_, wanted.n, wanted.more_examples, wanted.status) == ("holdout", 10, 20, gate_check.INSUFFICIENT)


def test_a_passing_severe_criterion_asks_for_nothing():
    spec, body = _severe_report(moderation_predictions(n=1000, n_threat=40, threat_wrong=1))
    assert decision.data_request(spec, body, round_=1).slices == []
