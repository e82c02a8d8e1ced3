"""The gate check: every criterion PASS, FAIL or INSUFFICIENT DATA with its numbers; the moderation case fails."""

from __future__ import annotations

import pytest

from core.evaluation import gate_check
from core.evaluation.gate_check import FAIL, INSUFFICIENT, PASS, GateNumbers, SliceNumbers


def _spec(**overrides) -> dict:
    spec = {
        "metric": "accuracy", "quality_floor": {"kind": "absolute", "value": 0.9}, "slice_floors": [],
        "severe_errors": {"classes": [], "max_rate": 0.01}, "p95_latency_ms": 50.0, "cost_per_1k": 1.0,
        "payback_months": 12.0,
    }
    spec.update(overrides)
    return spec


def _numbers(**overrides) -> GateNumbers:
    base = dict(student={"accuracy": 0.95, "macro-f1": 0.9, "teacher-agreement": 0.93},
                teacher={"accuracy": 0.96, "macro-f1": 0.92, "teacher-agreement": 1.0},
                baseline={"accuracy": 0.7, "macro-f1": 0.5, "teacher-agreement": 0.68},
                n={"accuracy": 10_000, "macro-f1": 10_000, "teacher-agreement": 10_000},
                severe_rate=0.0, n_severe=0, n_rows=10_000, p95_latency_ms=12.0, cost_per_1k=0.3,
                teacher_source="teacher run #1 by dana, locked at 2026-01-05 09:00 UTC")
    base.update(overrides)
    return GateNumbers(**base)


def _by_name(criteria):
    return {c.name: c for c in criteria}


def test_the_moderation_case_fails_on_a_rare_severe_slice_despite_a_passing_average():
    spec = _spec(slice_floors=[{"column": "category", "value": "self-harm", "floor": 0.9, "min_n": 30}],
                 severe_errors={"classes": ["self-harm"], "max_rate": 0.01})
    numbers = _numbers(slices={("category", "self-harm"): SliceNumbers(n=40, value=0.6, rows=40)},
                       severe_items=40, severe_missed=16)
    criteria = _by_name(gate_check.check(spec, numbers))
    assert criteria["quality floor: accuracy"].status == PASS
    rare = criteria["slice category=self-harm: accuracy"]
    assert (rare.status, rare.value, rare.threshold, rare.n) == (FAIL, 0.6, 0.9, 40)
    assert "falls short of the floor of 0.9 (n=40)" in rare.detail
    # 16 misses in 10,000 rows looked harmless; 16 of the 40 self-harm items is a 40 % miss rate
    assert (criteria[gate_check.SEVERE].status, criteria[gate_check.SEVERE].value) == (FAIL, 0.4)
    assert not gate_check.passed(list(criteria.values()))


def test_a_slice_with_fewer_rows_than_its_minimum_is_insufficient_data_and_fails_the_gate():
    spec = _spec(slice_floors=[{"column": "language", "value": "de", "floor": 0.9, "min_n": 150},
                               {"column": "tier", "value": "gold", "floor": 0.9, "min_n": 1}])
    numbers = _numbers(slices={("language", "de"): SliceNumbers(n=40, value=1.0)})
    criteria = gate_check.check(spec, numbers)
    de, gold = criteria[1], criteria[2]
    assert (de.status, de.n) == (INSUFFICIENT, 40) and "fewer than the 150" in de.detail
    assert (gold.status, gold.n) == (INSUFFICIENT, 0)  # a slice the holdout does not have at all
    assert not gate_check.passed(criteria)


def test_relative_to_teacher_is_a_share_of_the_teachers_score():
    spec = _spec(quality_floor={"kind": "relative-to-teacher", "value": 0.98})
    ok = gate_check.quality(gate_check.GateSpec(**spec), _numbers())
    assert ok.status == PASS and ok.threshold == pytest.approx(0.98 * 0.96)
    low = gate_check.quality(gate_check.GateSpec(**spec), _numbers(student={"accuracy": 0.9}))
    assert low.status == FAIL and "0.98 x the teacher's 0.96" in low.detail


def test_relative_to_baseline_adds_the_margin_to_the_better_baseline():
    spec = gate_check.GateSpec(**_spec(metric="macro-f1", quality_floor={"kind": "relative-to-baseline",
                                                                         "value": 0.02}))
    c = gate_check.quality(spec, _numbers(student={"macro-f1": 0.515}))
    assert c.status == FAIL and c.threshold == pytest.approx(0.52)
    assert gate_check.quality(spec, _numbers(student={"macro-f1": 0.52})).status == PASS  # on the floor passes


def test_an_unmeasured_score_is_insufficient_data():
    spec = gate_check.GateSpec(**_spec(quality_floor={"kind": "relative-to-teacher", "value": 0.9}))
    c = gate_check.quality(spec, _numbers(teacher={"accuracy": None}))
    assert c.status == INSUFFICIENT and "comparison score" in c.detail


def test_severe_errors_latency_and_cost_have_upper_limits():
    spec = _spec(severe_errors={"classes": ["refunds"], "max_rate": 0.005})
    criteria = _by_name(gate_check.check(spec, _numbers(severe_items=200, severe_missed=2, p95_latency_ms=80.0,
                                                        cost_per_1k=0.5)))
    assert criteria[gate_check.SEVERE].status == FAIL and criteria[gate_check.SEVERE].n == 200
    assert criteria["p95 latency"].status == FAIL and "exceeds the limit of 50 ms" in criteria["p95 latency"].detail
    assert criteria["cost per 1,000 requests"].status == PASS
    assert gate_check.check(spec, _numbers(p95_latency_ms=None))[-2].status == INSUFFICIENT


def test_every_criterion_carries_value_threshold_n_and_a_sentence():
    for c in gate_check.check(_spec(), _numbers()):
        d = c.as_dict()
        assert set(d) == {"name", "status", "value", "threshold", "n", "detail", "direction", "unit", "ci_low",
                          "ci_high", "slice_column", "slice_value", "source"}
        assert d["status"] == PASS and d["detail"].endswith(".")
