"""The evaluation metrics agree with scikit-learn, and the Wilson interval with SciPy's reference computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from core.domain import metrics

LABELS = ["a", "b", "c", "d"]


def _frame(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.array(LABELS, dtype=object)
    ref = labels[rng.integers(0, 4, n)]
    teacher = np.where(rng.random(n) < 0.85, ref, labels[rng.integers(0, 4, n)])
    student = np.where(rng.random(n) < 0.8, teacher, labels[rng.integers(0, 4, n)])
    ref = np.where(rng.random(n) < 0.2, None, ref)  # a fifth of the rows carry no reference
    return pd.DataFrame({"reference": ref, "teacher_label": teacher, "student_label": student,
                         "tier": np.array(["free", "pro", "enterprise"], dtype=object)[rng.integers(0, 3, n)],
                         "lang": np.where(rng.random(n) < 0.02, None, "en")})


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (57, 60), (1, 1), (480, 1000)])
def test_wilson_matches_scipy(k, n):
    low, high = metrics.wilson(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert float(low) == pytest.approx(ref.low, abs=1e-9) and float(high) == pytest.approx(ref.high, abs=1e-9)


def test_wilson_of_an_empty_slice_is_undefined():
    low, high = metrics.wilson(0, 0)
    assert np.isnan(low) and np.isnan(high)


def test_overall_figures_match_scikit_learn():
    df = _frame()
    got = metrics.overall(df["reference"], df["student_label"], df["teacher_label"])
    lab = df[df["reference"].notna()]
    assert got["n_labelled"] == len(lab)
    assert got["accuracy"] == pytest.approx(accuracy_score(lab["reference"], lab["student_label"]))
    assert got["macro_f1"] == pytest.approx(f1_score(lab["reference"], lab["student_label"], average="macro"))
    p, r, _, support = precision_recall_fscore_support(lab["reference"], lab["student_label"], labels=LABELS,
                                                       zero_division=0)
    for i, label in enumerate(LABELS):
        assert got["per_class"][label] == {"precision": pytest.approx(p[i]), "recall": pytest.approx(r[i]),
                                           "n": int(support[i])}
    assert got["agreement"] == pytest.approx((df["student_label"] == df["teacher_label"]).mean())


def test_macro_f1_counts_only_labels_seen_like_scikit_learn():
    ref = pd.Series(["a", "a", "b", "b"])
    pred = pd.Series(["a", "c", "b", "b"])
    got = metrics.overall(ref, pred)["macro_f1"]
    assert got == pytest.approx(f1_score(ref, pred, average="macro", zero_division=0))


def test_slice_report_matches_a_groupby_with_scikit_learn():
    df = _frame()
    table = metrics.slice_report(df, slices=["tier", "lang"])
    assert set(table["column"]) == {"tier", "lang"}
    assert "(missing)" in set(table[table["column"] == "lang"]["value"])
    for row in table.itertuples(index=False):
        col = df[row.column].fillna(metrics.MISSING_SLICE)
        part = df[col == row.value]
        lab = part[part["reference"].notna()]
        assert row.n == len(part) and row.n_labelled == len(lab)
        assert row.accuracy == pytest.approx(accuracy_score(lab["reference"], lab["student_label"]))
        assert row.teacher_accuracy == pytest.approx(accuracy_score(lab["reference"], lab["teacher_label"]))
        assert row.gap == pytest.approx(row.accuracy - row.teacher_accuracy)
        assert row.agreement == pytest.approx((part["student_label"] == part["teacher_label"]).mean())
        assert row.macro_f1 == pytest.approx(f1_score(lab["reference"], lab["student_label"], average="macro"))
        ci = binomtest(int(row.correct), int(row.n_labelled)).proportion_ci(method="wilson")
        assert (row.ci_low, row.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_a_slice_without_references_has_no_accuracy_but_keeps_its_agreement():
    df = pd.DataFrame({"reference": [None, None, "a"], "teacher_label": ["a", "b", "a"],
                       "student_label": ["a", "a", "a"], "queue": ["x", "x", "y"]})
    table = metrics.slice_report(df, slices=["queue"]).set_index("value")
    assert np.isnan(table.loc["x", "accuracy"]) and table.loc["x", "n_labelled"] == 0
    assert table.loc["x", "agreement"] == 0.5 and table.loc["y", "accuracy"] == 1.0


def test_the_truth_of_a_row_is_its_reference_else_the_teachers_answer():
    frame = pd.DataFrame({"reference": ["a", None, np.nan, None], "teacher_label": ["b", "b", "c", None]})
    truth = metrics.truth_of(frame)
    assert truth.iloc[:3].tolist() == ["a", "b", "c"] and pd.isna(truth.iloc[3])
