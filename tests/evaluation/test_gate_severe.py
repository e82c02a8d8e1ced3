"""Severe errors mean what a sponsor means: of the items whose truth is a severe class, the share the student
missed or mislabelled, against a ceiling, with a Wilson interval and a minimum number of such items; false
alarms (non-severe items labelled severe) are shown beside it. Attacked as in issue 9: a student that misses
60 % of a 1.5 % severe class passed a 0.01 ceiling because the misses were divided by every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.domain.gate_spec import GateSpec
from core.evaluation import gate_check, report
from core.gate import gate

SEVERE = gate_check.SEVERE


def _frame(*, n: int = 2000, n_severe: int = 30, missed: int = 18, false_alarms: int = 0) -> pd.DataFrame:
    truth = np.array(["legal"] * n_severe + ["billing", "shipping"] * ((n - n_severe) // 2), dtype=object)[:n]
    student = truth.copy()
    student[:missed] = "billing"  # the rare severe class answered as a common one
    student[n_severe:n_severe + false_alarms] = "legal"
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": "x", "reference": truth,
                         "teacher_label": truth, "student_label": student, "queue": truth})


def _spec(**severe) -> GateSpec:
    spec = gate.template("cost-pressure")
    spec["severe_errors"] = {"classes": ["legal"], "max_rate": 0.01, "min_n": 20, **severe}
    return GateSpec(**spec)


def _severe(frame: pd.DataFrame, spec: GateSpec) -> gate_check.Criterion:
    scored = report.score(frame, spec=spec, slices=["queue"], labels=None, baselines={})
    return next(c for c in gate_check.check(spec, scored.numbers) if c.name == SEVERE)


def test_missing_most_of_a_rare_severe_class_fails_the_ceiling():
    frame = _frame()
    assert report.severe_flags(frame, ["legal"]).sum() / len(frame) == pytest.approx(0.009)  # the old figure
    got = _severe(frame, _spec())
    assert got.status == gate_check.FAIL
    assert (got.value, got.n, got.threshold) == (pytest.approx(0.6), 30, 0.01)
    assert got.ci_low < 0.6 < got.ci_high and got.ci_low > 0.01  # clearly above the ceiling, not noise
    assert "missed or mislabelled 18 of the 30 items whose truth is severe" in got.detail


def test_too_few_severe_items_is_insufficient_data_not_pass():
    got = _severe(_frame(missed=0), _spec(min_n=50))
    assert got.status == gate_check.INSUFFICIENT and got.n == 30
    assert "fewer than the 50 the gate requires" in got.detail


def test_false_alarms_are_counted_and_shown_but_not_gated():
    frame = _frame(missed=0, false_alarms=40)
    scored = report.score(frame, spec=_spec(), slices=["queue"], labels=None, baselines={})
    assert (scored.severe["false_alarms"], scored.severe["n_non_severe"]) == (40, 1970)
    got = _severe(frame, _spec())
    assert got.status == gate_check.PASS and "40 of 1970 non-severe items as severe" in got.detail


def test_templates_and_old_gates_carry_a_minimum_and_a_miss_rate_ceiling():
    for play in ("cost-pressure", "latency", "stability", "specialization"):
        severe = GateSpec(**gate.template(play)).severe_errors
        assert severe.min_n >= 1 and 0 < severe.max_rate < 1
    old = gate.template("cost-pressure")
    old["severe_errors"] = {"classes": ["legal"], "max_rate": 0.05}  # a gate locked before min_n existed
    assert GateSpec(**old).severe_errors.min_n == 30
