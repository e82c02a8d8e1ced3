"""The per-slice report's one-bincount path gives the same table as counting row by row in plain Python.

Random frames with missing references, teachers and predictions, answers that are not one of the labels, missing
slice values (None, NaN, pd.NA), a slice column with no value at all, numeric and categorical slice columns, and
no rows at all; both the joint-table path and the fallback for many labels are checked, against each other exactly
and against the straightforward count (macro-F1 against scikit-learn).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from core.domain import metrics

SLICES = ["queue", "tier", "score", "nothing", "kind"]


def _is_missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def random_frame(rng: np.random.Generator, n: int, k: int) -> pd.DataFrame:
    """Labels l0..l{k-1}, plus "zz" (not a label when the labels are given) and missing answers."""
    pool = np.array([f"l{i}" for i in range(k)] + ["zz", None, np.nan], dtype=object)
    weights = np.array([0.9 / k] * k + [0.04, 0.03, 0.03])

    def answers() -> np.ndarray:
        return pool[rng.choice(len(pool), size=n, p=weights)]

    ref = answers()
    teacher = np.where(rng.random(n) < 0.7, ref, answers())
    student = np.where(rng.random(n) < 0.6, teacher, answers())
    queue = np.array(["a", "b", "c", None, np.nan], dtype=object)[rng.integers(0, 5, n)]
    tier = pd.array(np.array(["free", "pro", None], dtype=object)[rng.integers(0, 3, n)], dtype="string")
    score = np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 4, n).astype(float))
    kind = pd.Categorical(np.array(["x", "y"], dtype=object)[rng.integers(0, 2, n)], categories=["x", "y", "unused"])
    return pd.DataFrame({"reference": ref, "teacher_label": teacher, "student_label": student, "queue": queue,
                         "tier": tier, "score": score, "nothing": [None] * n, "kind": kind})


def straightforward(df: pd.DataFrame, *, slices: list[str], labels: list[str], with_f1: bool) -> pd.DataFrame:
    """Row by row: an answer counts when it is present and one of ``labels``; groups in order of first sight,
    the missing group last."""
    def valid(v: object) -> bool:
        return not _is_missing(v) and str(v) in labels

    out = []
    for col in slices:
        keys = [metrics.MISSING_SLICE if _is_missing(v) else str(v) for v in df[col].astype(object)]
        order = list(dict.fromkeys(k for k in keys if k != metrics.MISSING_SLICE))
        order += [metrics.MISSING_SLICE] if metrics.MISSING_SLICE in keys else []
        for value in order:
            rows = [r for r, key in zip(df.itertuples(index=False), keys, strict=True) if key == value]
            out.append(_group_row(col, value, rows, valid, with_f1))
    return pd.DataFrame(out, columns=metrics.SLICE_COLUMNS)


def _group_row(col: str, value: str, rows: list, valid, with_f1: bool) -> dict:  # noqa: ANN001
    same = [(r.reference, r.student_label, r.teacher_label) for r in rows]
    lab = [(str(ref), s, t) for ref, s, t in same if valid(ref)]
    n_ok = sum(1 for ref, s, _ in lab if valid(s) and str(s) == ref)
    n_tok = sum(1 for ref, _, t in lab if valid(t) and str(t) == ref)
    paired = [(s, t) for _, s, t in same if valid(t)]
    n_agree = sum(1 for s, t in paired if valid(s) and str(s) == str(t))
    acc = n_ok / len(lab) if lab else np.nan
    tacc = n_tok / len(lab) if lab else np.nan
    low, high = metrics.wilson(n_ok, len(lab))
    tlow, thigh = metrics.wilson(n_tok, len(lab))
    f1 = np.nan
    if with_f1 and lab:
        truth = [ref for ref, _, _ in lab]
        pred = [str(s) if valid(s) else "<unreadable>" for _, s, _ in lab]
        seen = sorted(set(truth) | (set(pred) - {"<unreadable>"}))
        f1 = f1_score(truth, pred, labels=seen, average="macro", zero_division=0)
    return {"column": col, "value": value, "n": len(rows), "n_labelled": len(lab), "correct": n_ok,
            "accuracy": acc, "ci_low": float(low), "ci_high": float(high), "macro_f1": f1,
            "n_agree": len(paired), "agreement": n_agree / len(paired) if paired else np.nan,
            "teacher_correct": n_tok, "teacher_accuracy": tacc, "teacher_ci_low": float(tlow),
            "teacher_ci_high": float(thigh), "gap": acc - tacc}


def both_paths(df: pd.DataFrame, **kw) -> pd.DataFrame:  # noqa: ANN003
    joint = metrics.slice_report(df, **kw)
    fallback = metrics.slice_report(df, joint_cells=0, **kw)
    pd.testing.assert_frame_equal(joint, fallback, check_exact=True)
    return joint


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_report_equals_the_row_by_row_count_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, k = [(0, 3), (1, 1), (7, 2), (400, 3), (1500, 6), (300, 12), (50, 1), (900, 4)][seed]
    df = random_frame(rng, n, k)
    given = seed % 2 == 0  # explicit labels: "zz" is then an unreadable answer, a reference it is not
    labels = [f"l{i}" for i in range(k)] if given else sorted({str(v) for c in ("reference", "teacher_label",
                                                               "student_label") for v in df[c] if not _is_missing(v)})
    with_f1 = seed != 5
    got = both_paths(df, slices=SLICES, labels=labels if given else None, with_f1=with_f1)
    want = straightforward(df, slices=SLICES, labels=labels, with_f1=with_f1)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False, rtol=1e-12, atol=0)


def test_an_empty_holdout_gives_an_empty_table_with_every_column():
    df = random_frame(np.random.default_rng(0), 0, 3)
    got = both_paths(df, slices=SLICES)
    assert got.empty and list(got.columns) == metrics.SLICE_COLUMNS


def test_a_slice_column_with_no_value_is_one_missing_group_of_every_row():
    df = random_frame(np.random.default_rng(1), 200, 3)
    got = both_paths(df, slices=["nothing"])
    assert got["value"].tolist() == [metrics.MISSING_SLICE] and got["n"].tolist() == [200]


def test_no_slice_columns_give_an_empty_table():
    df = random_frame(np.random.default_rng(2), 20, 3)
    assert metrics.slice_report(df, slices=[]).empty


def test_a_slice_without_labelled_rows_has_no_accuracy_interval_or_f1_on_either_path():
    df = pd.DataFrame({"reference": [None, np.nan, "a"], "teacher_label": ["a", None, "a"],
                       "student_label": ["a", "b", None], "queue": ["x", "x", "y"]})
    got = both_paths(df, slices=["queue"]).set_index("value")
    x = got.loc["x"]
    assert x["n_labelled"] == 0 and x["n_agree"] == 1 and x["agreement"] == 1.0
    assert all(np.isnan(x[c]) for c in ("accuracy", "ci_low", "ci_high", "macro_f1", "teacher_accuracy", "gap"))
    y = got.loc["y"]  # a missing prediction is a miss, and its class still counts for macro-F1
    assert y["accuracy"] == 0.0 and y["teacher_accuracy"] == 1.0 and y["macro_f1"] == 0.0 and y["agreement"] == 0.0


def test_many_labels_and_slice_values_take_the_fallback_with_the_same_figures():
    rng = np.random.default_rng(3)
    n, k = 3000, 50  # 51**3 x 40 values is over JOINT_CELLS: the default call takes the fallback
    labels = np.array([f"c{i}" for i in range(k)], dtype=object)
    ref = labels[rng.integers(0, k, n)]
    df = pd.DataFrame({"reference": ref, "teacher_label": np.where(rng.random(n) < 0.8, ref, labels[0]),
                       "student_label": np.where(rng.random(n) < 0.7, ref, labels[1]),
                       "queue": np.array([f"q{i}" for i in range(40)], dtype=object)[rng.integers(0, 40, n)]})
    assert 40 * (k + 1) ** 3 > metrics.JOINT_CELLS
    got = metrics.slice_report(df, slices=["queue"])
    want = straightforward(df, slices=["queue"], labels=list(labels), with_f1=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12, atol=0)
    joint = metrics.slice_report(df, slices=["queue"], joint_cells=10**8)  # 42 MB of counters
    pd.testing.assert_frame_equal(got, joint, check_exact=True)
