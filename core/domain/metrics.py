"""Scores of a student beside its teacher: overall, per class and per slice, with Wilson intervals.

Pure numpy and pandas. The per-slice report groups once per slice column and
counts with ``np.bincount`` on integer codes, so a million holdout rows and four
slice columns take well under a second (benchmarks/bench_slice_report.py).
scikit-learn's metrics would do the overall figures, but per slice they cost a
Python call per group; the tests check these against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MISSING_SLICE = "(missing)"


def truth_of(frame: pd.DataFrame) -> pd.Series:
    """The right answer of each row: its reference, else the teacher's answer (missing when neither). Every
    figure judged against "the truth" (severe misses, the fallback curve's accuracy) uses this one rule."""
    reference = frame["reference"].astype(object)
    return reference.where(reference.notna(), frame["teacher_label"].astype(object))


def wilson(k: npt.ArrayLike, n: npt.ArrayLike, *, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (vectorised; NaN where n is 0)."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        low, high = centre - half, centre + half
    low = np.where(n > 0, np.clip(low, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(high, 0.0, 1.0), np.nan)
    return low, high


def encode(*columns: Sequence[Any] | pd.Series,
           labels: Sequence[str] | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Shared integer codes for label columns (-1 for a missing or unknown value) and the label list.

    Each column is factorised on its own (fast on Arrow strings) and only its few distinct values are
    mapped onto the shared labels.
    """
    factored = [pd.factorize(pd.Series(c) if not isinstance(c, pd.Series) else c, use_na_sentinel=True)
                for c in columns]
    if labels is None:
        labels = sorted({str(u) for _, uniques in factored for u in uniques})
    index = pd.Index(list(labels))
    codes = []
    for local, uniques in factored:
        lookup = np.append(index.get_indexer([str(u) for u in uniques]), -1).astype(np.int64)
        codes.append(lookup[np.asarray(local, dtype=np.int64)])  # local -1 picks the trailing -1
    return codes, list(labels)


def _ratio(k: float, n: float) -> float | None:
    return float(k / n) if n else None


def macro_f1_from_codes(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float | None:
    """Macro-F1 over the labels seen in either column (scikit-learn's default, zero_division=0).

    A prediction coded -1 (missing or unreadable) is wrong: it costs its true class recall and adds no class.
    """
    if len(y_true) == 0:
        return None
    tp = np.bincount(y_true[y_true == y_pred], minlength=k)
    support = np.bincount(y_true, minlength=k) + np.bincount(y_pred[y_pred >= 0], minlength=k)
    seen = support > 0
    return float((2 * tp[seen] / support[seen]).mean())


def overall(reference: Sequence[Any] | pd.Series, predicted: Sequence[Any] | pd.Series,
            teacher: Sequence[Any] | pd.Series | None = None, *,
            labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall against the reference, and agreement with the teacher.

    One scoring rule, shared with ``slice_report``: accuracy-type figures count every row with a reference
    (``n_labelled``), and a missing or unreadable prediction (not one of the labels) counts as wrong;
    agreement counts every row where the teacher answered (``n_agree``), a missing prediction as a
    disagreement. ``n_unreadable`` counts the rows without a readable prediction.
    """
    cols = [reference, predicted] + ([teacher] if teacher is not None else [])
    codes, labels = encode(*cols, labels=labels)
    ref, pred = codes[0], codes[1]
    scored = ref >= 0
    rt, pt = ref[scored], pred[scored]
    k = len(labels)
    tp = np.bincount(rt[rt == pt], minlength=k)
    n_true, n_pred = np.bincount(rt, minlength=k), np.bincount(pt[pt >= 0], minlength=k)
    per_class = {label: {"precision": _ratio(tp[i], n_pred[i]) or 0.0, "recall": _ratio(tp[i], n_true[i]) or 0.0,
                         "n": int(n_true[i])} for i, label in enumerate(labels) if n_true[i] or n_pred[i]}
    out = {"n": len(ref), "n_labelled": int(scored.sum()), "n_unreadable": int((pred < 0).sum()),
           "accuracy": _ratio(int((rt == pt).sum()), len(rt)),
           "macro_f1": macro_f1_from_codes(rt, pt, k), "per_class": per_class, "agreement": None, "n_agree": 0}
    if teacher is not None:
        tea = codes[2]
        answered = tea >= 0
        out["n_agree"] = int(answered.sum())
        out["agreement"] = _ratio(int((pred[answered] == tea[answered]).sum()), int(answered.sum()))
    return out


def slice_report(frame: pd.DataFrame, *, slices: Sequence[str], reference: str = "reference",
                 student: str = "student_label", teacher: str = "teacher_label", with_f1: bool = True,
                 labels: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (slice column, value): n, the student's and teacher's accuracy with Wilson intervals,
    agreement, the student's macro-F1 and the gap (student − teacher accuracy).

    ``n_labelled`` rows (with a reference) carry the accuracy figures; ``n_agree`` rows (the teacher answered)
    the agreement. The scoring rule is ``overall``'s: a missing or unreadable prediction counts as wrong.
    """
    (ref, stu, tea), labels = encode(frame[reference], frame[student], frame[teacher], labels=labels)
    k = len(labels)
    scored = ref >= 0
    correct = scored & (stu == ref)
    teacher_correct = scored & (tea == ref)
    paired = tea >= 0
    agree = paired & (stu == tea)
    parts = [_one_column(frame[col], col, scored, correct, teacher_correct, paired, agree,
                         (ref, stu, k) if with_f1 else None) for col in slices]
    if not parts:
        return pd.DataFrame(columns=SLICE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


SLICE_COLUMNS = ["column", "value", "n", "n_labelled", "correct", "accuracy", "ci_low", "ci_high", "macro_f1",
                 "n_agree", "agreement", "teacher_correct", "teacher_accuracy", "teacher_ci_low",
                 "teacher_ci_high", "gap"]


def _one_column(values: pd.Series, name: str, scored: np.ndarray, correct: np.ndarray,
                teacher_correct: np.ndarray, paired: np.ndarray, agree: np.ndarray,
                f1_parts: tuple[np.ndarray, np.ndarray, int] | None) -> pd.DataFrame:
    g, uniques = pd.factorize(values, use_na_sentinel=True)
    names = [str(u) for u in uniques]
    if (g < 0).any():  # missing slice values form their own group rather than vanishing
        g = np.where(g < 0, len(names), g)
        names.append(MISSING_SLICE)
    n_groups = len(names)

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(g if mask is None else g[mask], minlength=n_groups)

    n, n_lab, n_ok, n_tok = count(), count(scored), count(correct), count(teacher_correct)
    n_pair, n_agree = count(paired), count(agree)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(n_lab > 0, n_ok / n_lab, np.nan)
        tacc = np.where(n_lab > 0, n_tok / n_lab, np.nan)
        agreement = np.where(n_pair > 0, n_agree / n_pair, np.nan)
    low, high = wilson(n_ok, n_lab)
    tlow, thigh = wilson(n_tok, n_lab)
    f1 = _slice_f1(g, n_groups, scored, *f1_parts) if f1_parts else np.full(n_groups, np.nan)
    return pd.DataFrame({
        "column": name, "value": names, "n": n, "n_labelled": n_lab, "correct": n_ok, "accuracy": acc,
        "ci_low": low, "ci_high": high, "macro_f1": f1, "n_agree": n_pair, "agreement": agreement,
        "teacher_correct": n_tok, "teacher_accuracy": tacc, "teacher_ci_low": tlow, "teacher_ci_high": thigh,
        "gap": acc - tacc,
    })


def _slice_f1(g: np.ndarray, n_groups: int, scored: np.ndarray, ref: np.ndarray, stu: np.ndarray,
              k: int) -> np.ndarray:
    """Macro-F1 per group from (group, label) counts: one bincount each for hits, truths and predictions
    (a missing prediction is a miss of its true class, as in ``macro_f1_from_codes``)."""
    gs, rs, ps = g[scored], ref[scored], stu[scored]
    size = n_groups * k
    tp = np.bincount((gs * k + rs)[rs == ps], minlength=size).reshape(n_groups, k)
    read = ps >= 0
    support = (np.bincount(gs * k + rs, minlength=size)
               + np.bincount((gs * k + ps)[read], minlength=size)).reshape(n_groups, k)
    seen = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(seen, 2 * tp / support, 0.0)
        return np.where(seen.any(axis=1), f1.sum(axis=1) / seen.sum(axis=1), np.nan)

