"""Scores of a student beside its teacher: overall, per class and per slice, with Wilson intervals.

Pure numpy and pandas. The per-slice report codes each row once and counts with
one ``np.bincount`` per slice column, so a million holdout rows and four slice
columns take about as long as reading their strings to integer codes
(benchmarks/bench_slice_report.py).
scikit-learn's metrics would do the overall figures, but per slice they cost a
Python call per group; the tests check these against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``a == b`` row by row as Python objects compare (a missing value equals nothing), without turning two
    Arrow string columns into a million Python objects first (the common case: labels read from Parquet)."""
    if a.dtype == b.dtype and isinstance(a.dtype, pd.StringDtype):
        return np.asarray((a == b).fillna(False), dtype=bool)
    return np.asarray(a.astype(object) == b.astype(object), dtype=bool)


def matches_truth(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Whether ``column`` gives each row's truth (``truth_of``'s rule): ``column == truth_of(frame)``, faster."""
    has_ref = frame["reference"].notna().to_numpy()
    return np.where(has_ref, same(frame[column], frame["reference"]), same(frame[column], frame["teacher_label"]))


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
                 labels: Sequence[str] | None = None, joint_cells: int | None = None) -> pd.DataFrame:
    """One row per (slice column, value): n, the student's and teacher's accuracy with Wilson intervals,
    agreement, the student's macro-F1 and the gap (student − teacher accuracy).

    ``n_labelled`` rows (with a reference) carry the accuracy figures; ``n_agree`` rows (the teacher answered)
    the agreement. The scoring rule is ``overall``'s: a missing or unreadable prediction counts as wrong.
    Each row gets one code for everything the figures need (its reference, student and teacher label), so
    each slice column costs one ``np.bincount`` over (slice value, code); where labels cubed x slice values
    passes ``joint_cells`` counters (default ``JOINT_CELLS``) it falls back to four bincounts per column.
    """
    (ref, stu, tea), labels = encode(frame[reference], frame[student], frame[teacher], labels=labels)
    k = len(labels)
    groups = [_groups(frame[col]) for col in slices]
    if not groups:
        return pd.DataFrame(columns=SLICE_COLUMNS)
    widest = max(len(names) for _, names in groups)
    joint = widest * _joint_width(k) <= (JOINT_CELLS if joint_cells is None else joint_cells)
    tally = _joint_tally(ref, stu, tea, k) if joint else _flag_tally(ref, stu, tea, k)
    parts = [_one_column(tally(g, len(names)), col, names, with_f1)
             for col, (g, names) in zip(slices, groups, strict=True)]
    return pd.concat(parts, ignore_index=True)


SLICE_COLUMNS = ["column", "value", "n", "n_labelled", "correct", "accuracy", "ci_low", "ci_high", "macro_f1",
                 "n_agree", "agreement", "teacher_correct", "teacher_accuracy", "teacher_ci_low",
                 "teacher_ci_high", "gap"]
JOINT_CELLS = 1 << 22  # counters in one slice column's joint table (32 MiB of int64) before the fallback


@dataclass(frozen=True)
class Tally:
    """Per slice value: rows, labelled rows, student hits, teacher hits, rows the teacher answered, agreements;
    per (slice value, label) over labelled rows: student hits and support (true + predicted) for macro-F1."""

    n: np.ndarray
    n_lab: np.ndarray
    n_ok: np.ndarray
    n_tok: np.ndarray
    n_pair: np.ndarray
    n_agree: np.ndarray
    tp: np.ndarray
    support: np.ndarray


def _groups(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer group codes of a slice column; missing values form their own group rather than vanishing."""
    g, uniques = pd.factorize(values, use_na_sentinel=True)
    names = [str(u) for u in uniques]
    g = np.asarray(g, dtype=np.intp)
    if len(g) and g.min() < 0:
        g = np.where(g < 0, len(names), g)
        names.append(MISSING_SLICE)
    return g, names


def _joint_width(k: int) -> int:
    return (k + 1) ** 3


def _joint_tally(ref: np.ndarray, stu: np.ndarray, tea: np.ndarray, k: int) -> Callable[[np.ndarray, int], Tally]:
    """Code each row once as (reference, student, teacher), each shifted by one so that missing is 0; a slice
    column is then one bincount over (group, code), and every figure a sum or a diagonal of that small table."""
    side = k + 1
    code = ref * side  # in place from here: a million rows make every temporary count
    code += stu
    code *= side
    code += tea
    code += side * side + side + 1
    width, label = side**3, np.arange(1, side)

    def tally(g: np.ndarray, n_groups: int) -> Tally:
        key = g * width
        key += code
        table = np.bincount(key, minlength=n_groups * width).reshape(n_groups, side, side, side)
        pairs = table[:, 1:].sum(axis=3)  # (group, reference, student + 1) over labelled rows
        tp = pairs[:, label - 1, label]
        return Tally(n=table.sum(axis=(1, 2, 3)), n_lab=pairs.sum(axis=(1, 2)), n_ok=tp.sum(axis=1),
                     n_tok=table.sum(axis=2)[:, label, label].sum(axis=1),
                     n_pair=table[..., 1:].sum(axis=(1, 2, 3)),
                     n_agree=table.sum(axis=1)[:, label, label].sum(axis=1),
                     tp=tp, support=pairs.sum(axis=2) + pairs[:, :, 1:].sum(axis=1))
    return tally


def _flag_tally(ref: np.ndarray, stu: np.ndarray, tea: np.ndarray, k: int) -> Callable[[np.ndarray, int], Tally]:
    """For many labels: five flags in one code (one bincount) and three per-label bincounts (a dump bin k
    takes the rows that do not count) for macro-F1."""
    scored, paired = ref >= 0, tea >= 0
    correct, agree = scored & (stu == ref), paired & (stu == tea)
    tcorrect = scored & (tea == ref)
    flags = scored + 2 * correct + 4 * tcorrect + 8 * paired + 16 * agree
    hits, truths = np.where(correct, ref, k), np.where(scored, ref, k)
    preds = np.where(scored & (stu >= 0), stu, k)

    def tally(g: np.ndarray, n_groups: int) -> Tally:
        by_flags = np.bincount(g * 32 + flags, minlength=n_groups * 32).reshape(n_groups, 32)
        bits = np.arange(32)
        n_of = [by_flags[:, (bits & (1 << b)) > 0].sum(axis=1) for b in range(5)]
        per_label = [np.bincount(g * (k + 1) + c, minlength=n_groups * (k + 1)).reshape(n_groups, k + 1)[:, :k]
                     for c in (hits, truths, preds)]
        return Tally(n=by_flags.sum(axis=1), n_lab=n_of[0], n_ok=n_of[1], n_tok=n_of[2], n_pair=n_of[3],
                     n_agree=n_of[4], tp=per_label[0], support=per_label[1] + per_label[2])
    return tally


def _one_column(t: Tally, name: str, names: list[str], with_f1: bool) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(t.n_lab > 0, t.n_ok / t.n_lab, np.nan)
        tacc = np.where(t.n_lab > 0, t.n_tok / t.n_lab, np.nan)
        agreement = np.where(t.n_pair > 0, t.n_agree / t.n_pair, np.nan)
    low, high = wilson(t.n_ok, t.n_lab)
    tlow, thigh = wilson(t.n_tok, t.n_lab)
    f1 = _macro_f1(t.tp, t.support) if with_f1 else np.full(len(names), np.nan)
    return pd.DataFrame({
        "column": name, "value": names, "n": t.n, "n_labelled": t.n_lab, "correct": t.n_ok, "accuracy": acc,
        "ci_low": low, "ci_high": high, "macro_f1": f1, "n_agree": t.n_pair, "agreement": agreement,
        "teacher_correct": t.n_tok, "teacher_accuracy": tacc, "teacher_ci_low": tlow, "teacher_ci_high": thigh,
        "gap": acc - tacc,
    })


def _macro_f1(tp: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Macro-F1 per group over the labels seen in it (as ``macro_f1_from_codes``; NaN for a group without)."""
    seen = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(seen, 2 * tp / support, 0.0)
        return np.where(seen.any(axis=1), f1.sum(axis=1) / seen.sum(axis=1), np.nan)
