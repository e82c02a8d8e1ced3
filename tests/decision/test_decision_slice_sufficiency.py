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
    [wanted] = decision.data_request(spec, body, round_=1).slices
    assert (wanted.status, wanted.for_, wanted.n, wanted.more_examples) == (
        gate_check.INSUFFICIENT, "holdout", 20, 10)
    assert "not to the training data" in wanted.why


def test_the_gate_and_the_data_request_agree_on_every_slice():
    spec, body = _report(moderation_predictions(n=1000, n_threat=40, threat_wrong=8))
    [wanted] = decision.data_request(spec, body, round_=1).slices
    threat = body.slice_criterion("category", "threat")
    assert (threat.status, wanted.status, wanted.for_) == (gate_check.FAIL, gate_check.FAIL, "training")
    assert gate_check.slice_sufficient(threat.n, 30) and not gate_check.slice_sufficient(29, 30)
