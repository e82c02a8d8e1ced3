"""Rollout judges a slice with the gate's rule (one function, ``criteria.proportion``): a minimum n, the point
estimate against the floor, the Wilson interval beside it. The figure the operator sees is the one judged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from monitor_helpers import request

from core.domain.criteria import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, proportion
from core.domain.metrics import wilson
from core.rollout import rollout


def _stage(asked: int, agreed: int, *, language: str = "de", extra_unasked: int = 0) -> pd.DataFrame:
    start = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    rows = [request(i, stage="5", ts=start + timedelta(seconds=i), language=language,
                    teacher="same" if i < agreed else "other") for i in range(asked)]
    rows += [request(asked + i, stage="5", ts=start + timedelta(seconds=asked + i), language=language,
                     teacher=None) for i in range(extra_unasked)]
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def _slice(criteria, name: str):
    return next(c for c in criteria if c.name == name)


def test_37_of_39_shows_the_judged_figure_and_its_interval():
    # 37/39 = 0.9487 against a 0.95 floor: it falls short, and the criterion says by how little and how
    # uncertain it is, on the same requests it counts (the stage's teacher-asked ones), not the whole log's.
    got = _slice(rollout.slice_criteria(_stage(39, 37, extra_unasked=40), floor=0.95, min_n=30),
                 "agreement language=de")
    low, high = (float(x) for x in wilson(37, 39))
    assert got.status == FAIL and got.n == 39 and got.value == pytest.approx(37 / 39, abs=1e-6)
    assert (got.ci_low, got.ci_high) == (pytest.approx(low), pytest.approx(high)) and low < 0.95 < high
    assert "37 of 39" in got.detail and (got.slice_column, got.slice_value) == ("language", "de")


def test_exactly_on_the_floor_passes_in_rollout_as_in_the_gate():
    # 38/40 = 0.95 exactly (with float noise): the gate's comparison, so both steps agree on the boundary.
    got = _slice(rollout.slice_criteria(_stage(40, 38), floor=0.95, min_n=30), "agreement language=de")
    gate_like = proportion("x", k=38, n=40, threshold=0.95, min_n=30, what="x")
    assert got.status == gate_like.status == PASS


def test_a_slice_short_of_min_n_is_shown_not_judged():
    got = _slice(rollout.slice_criteria(_stage(12, 2), floor=0.95, min_n=30), "agreement language=de")
    assert got.status == NOT_APPLICABLE and got.n == 12 and "fewer than the 30" in got.detail
    assert proportion("x", k=2, n=12, threshold=0.9, min_n=30, what="x").status == INSUFFICIENT  # gate's word


def test_a_short_slice_does_not_block_but_a_failing_one_does():
    mixed = pd.concat([_stage(39, 37, language="de"), _stage(5, 0, language="fr")], ignore_index=True)
    statuses = {c.slice_value: c.status for c in rollout.slice_criteria(mixed, floor=0.95, min_n=30)}
    assert statuses["de"] == FAIL and statuses["fr"] == NOT_APPLICABLE


def test_a_ceiling_reads_the_other_way():
    c = proportion("miss rate", k=3, n=60, threshold=0.05, min_n=30, what="missed", at_most=True)
    assert c.status == PASS and c.direction == "lower" and "is within" in c.detail
    assert proportion("miss rate", k=4, n=60, threshold=0.05, min_n=30, what="m", at_most=True).status == FAIL
