"""The review page's fast comparisons (Arrow strings compared as they are, not turned into Python objects) give
exactly what comparing Python objects row by row gives: on random columns with None, NaN and pd.NA, in every
string dtype, for the disagreement queue, the fallback curve, and with no rows at all."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from review_helpers import moderation_predictions

from core.domain import metrics
from core.review import review

DTYPES = ["object", "str", "string"]
LABELS = ["ok", "spam", "insult", "threat"]


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _python_same(a: pd.Series, b: pd.Series) -> list[bool]:
    return [not _missing(x) and not _missing(y) and x == y for x, y in zip(a.astype(object), b.astype(object),
                                                                            strict=True)]


def _answers(rng: np.random.Generator, n: int) -> np.ndarray:
    pool = np.array([*LABELS, None, np.nan], dtype=object)
    return pool[rng.choice(len(pool), size=n, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])]


def random_predictions(seed: int, n: int, dtype: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = moderation_predictions(n=max(n, 50), seed=seed).head(n).reset_index(drop=True)
    ref = _answers(rng, n)
    df["reference"] = ref
    df["teacher_label"] = np.where(rng.random(n) < 0.6, ref, _answers(rng, n))
    df["student_label"] = np.where(rng.random(n) < 0.6, df["teacher_label"], _answers(rng, n))
    df["student_confidence"] = np.where(rng.random(n) < 0.05, np.nan, df["student_confidence"])
    for col in ("reference", "teacher_label", "student_label"):
        df[col] = df[col].astype(dtype)
    return df


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype_a", DTYPES)
@pytest.mark.parametrize("dtype_b", DTYPES)
def test_same_is_python_equality_where_a_missing_value_equals_nothing(seed, dtype_a, dtype_b):
    rng = np.random.default_rng(seed)
    n = [0, 1, 37, 2000][seed]
    a, b = pd.Series(_answers(rng, n)).astype(dtype_a), pd.Series(_answers(rng, n)).astype(dtype_b)
    assert metrics.same(a, b).tolist() == _python_same(a, b)


@pytest.mark.parametrize("dtype", ["str", "string"])
def test_matches_truth_is_equality_with_the_truth_of_each_row(dtype):
    df = random_predictions(3, 3000, dtype)
    truth = metrics.truth_of(df)
    assert metrics.matches_truth(df, "student_label").tolist() == _python_same(df["student_label"], truth)


def _straightforward_queue_ids(df: pd.DataFrame) -> set[str]:
    out = set()
    for row in df.itertuples(index=False):
        s, t, r = row.student_label, row.teacher_label, row.reference
        same_st = not _missing(s) and not _missing(t) and s == t
        if not same_st or (not _missing(r) and not (s == r and t == r)):
            out.add(row.id)
    return out


@pytest.mark.parametrize("n", [0, 1, 400, 3000])
def test_the_queue_on_arrow_strings_is_the_queue_on_python_objects(session, gated, failing_eval, n):
    queues = {}
    for dtype in DTYPES:
        df = random_predictions(n, n, dtype)
        queues[dtype] = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id,
                                                  limit=None, predictions=df)
    ids = {d: q.items["id"].tolist() for d, q in queues.items()}
    assert ids["str"] == ids["object"] == ids["string"]  # same rows, same order
    assert set(ids["object"]) == _straightforward_queue_ids(random_predictions(n, n, "object"))
    assert queues["str"].total == len(ids["object"])


@pytest.mark.parametrize("n", [0, 1, 500, 3000])
def test_the_fallback_curve_on_arrow_strings_is_the_curve_on_python_objects(n):
    curves = [review.fallback_curve(random_predictions(n + 1, n, d), None) for d in DTYPES]
    for other in curves[1:]:
        pd.testing.assert_frame_equal(curves[0], other, check_exact=True)
    df = random_predictions(n + 1, n, "object")
    right = np.array(_python_same(df["student_label"], metrics.truth_of(df)), dtype=bool)
    conf = df["student_confidence"].to_numpy(dtype=float)
    for row in curves[0].iloc[::9].itertuples():
        served = conf >= row.threshold  # NaN is never served
        assert row.served_share == served.sum() / max(n, 1)
        want = right[served].mean() if served.any() else np.nan
        assert (np.isnan(row.student_accuracy) and np.isnan(want)) or row.student_accuracy == pytest.approx(want)


def _straightforward_queue(df: pd.DataFrame, spec) -> pd.DataFrame:  # noqa: ANN001
    """The queue the plain pandas way: filter every column, flag, sort every column."""
    s, t, r = (df[c].astype(object) for c in ("student_label", "teacher_label", "reference"))
    out = df[(s != t) | (r.notna() & ((s != r) | (t != r)))].copy()
    out["critical_slice"] = pd.Series(False, index=out.index)
    for f in spec.slice_floors:
        out["critical_slice"] |= out[f.column].astype(str) == f.value
    severe = set(spec.severe_errors.classes)
    out["severe_class"] = out["reference"].isin(severe) | out["teacher_label"].isin(severe)
    return out.sort_values(["critical_slice", "severe_class", "student_confidence"], ascending=[False, False, True],
                           na_position="first", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("n", [0, 1, 400, 3000])
@pytest.mark.parametrize("limit", [None, 25])
def test_the_queue_is_the_plain_pandas_filter_and_sort_of_every_column(session, gated, failing_eval, n, limit):
    df = random_predictions(n + 7, n, "str")
    df["category"] = np.where(np.arange(n) % 5 == 0, "threat", df["category"])  # a critical slice, and ties
    df["student_confidence"] = np.round(df["student_confidence"], 1)
    q = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, limit=limit, predictions=df)
    want = _straightforward_queue(df, review._gate_spec(session, failing_eval))
    pd.testing.assert_frame_equal(q.items, want.head(limit) if limit else want, check_exact=True)
    assert q.total == len(want)
