"""The evaluation report: the predictions table scored overall, per slice and against the gate.

Shared by trained students and imported predictions, so both are judged the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from core.domain import metrics
from core.domain.gate_spec import GateSpec, Metric
from core.evaluation import gate_check
from core.evaluation.latency import describe
from core.evaluation.teacher_bar import TeacherBar

A, F1, AGREE, EXACT, FIELD = (m.value for m in (Metric.ACCURACY, Metric.MACRO_F1, Metric.AGREEMENT,
                                                 Metric.EXACT_MATCH, Metric.FIELD_ACCURACY))
NDCG, PAIR = Metric.NDCG.value, Metric.PAIRWISE.value


# Latency of a model that was not timed here (an imported student, a teacher behind an API).
NOT_MEASURED = {"p50_ms": None, "p95_ms": None, "batch_throughput": None, "ms_per_example": None}


@dataclass(frozen=True)
class Scored:
    """Everything the report and the gate check need, computed once."""

    overall: dict  # {"student": {...}, "teacher": {...}, "majority": {...}, "tfidf": {...}}
    slices: pd.DataFrame  # metrics.slice_report
    severe: dict  # severe_counts: {"rate" (miss rate), "n_severe" (missed), "n" (severe items), false alarms...}
    numbers: gate_check.GateNumbers


def clean(x):
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _truth(frame: pd.DataFrame) -> pd.Series:
    """The right answer of each row: the reference, else the teacher's answer (None when neither)."""
    return frame["reference"].where(frame["reference"].notna(), frame["teacher_label"])


def severe_flags(frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """True where the right answer (the reference, else the teacher's) is a severe class and the student missed it."""
    truth = _truth(frame)
    student = frame["student_label"]
    return (truth.isin(list(classes)) & (student.isna() | (student != truth))).fillna(False).to_numpy(dtype=bool)


def severe_counts(frame: pd.DataFrame, classes: Sequence[str]) -> dict:
    """The severe-class figures the gate judges: items whose truth is severe and how many the student missed or
    mislabelled (the miss rate, with its Wilson interval); items whose truth is known and not severe and how many
    the student labelled severe (false alarms)."""
    truth, student = _truth(frame), frame["student_label"]
    known = truth.notna().to_numpy(dtype=bool)
    is_severe = truth.isin(list(classes)).to_numpy(dtype=bool) & known
    missed = severe_flags(frame, classes)
    alarms = known & ~is_severe & student.isin(list(classes)).to_numpy(dtype=bool)
    n, k = int(is_severe.sum()), int(missed.sum())
    m, f = int((known & ~is_severe).sum()), int(alarms.sum())
    low, high = metrics.wilson(k, n)
    return {"rate": k / n if n else None, "n_severe": k, "n": n, "ci_low": float(low), "ci_high": float(high),
            "false_alarms": f, "n_non_severe": m, "false_alarm_rate": f / m if m else None,
            "classes": sorted(classes)}


def _metric_values(o: dict) -> dict[str, float | None]:
    return {A: o.get("accuracy"), F1: o.get("macro_f1"), AGREE: o.get("agreement"), EXACT: o.get("accuracy"),
            FIELD: o.get("field_accuracy"), NDCG: o.get("ndcg_at_k"), PAIR: o.get("pairwise_order")}


def _slice_numbers(slices: pd.DataFrame, metric: str) -> dict[tuple[str, str], gate_check.SliceNumbers]:
    value_col, n_col = {F1: ("macro_f1", "n_labelled"), AGREE: ("agreement", "n_agree")}.get(
        metric, ("accuracy", "n_labelled"))
    out = {}
    for row in slices.itertuples(index=False):
        v = getattr(row, value_col)
        out[(row.column, row.value)] = gate_check.SliceNumbers(
            n=int(getattr(row, n_col)), value=None if pd.isna(v) else float(v), rows=int(row.n))
    return out


def score(frame: pd.DataFrame, *, spec: GateSpec, slices: Sequence[str], labels: Sequence[str] | None,
          baselines: dict[str, Sequence[str]], with_f1: bool = True) -> Scored:
    """Score a predictions table (reference, teacher_label, student_label, slice columns)."""
    student = metrics.overall(frame["reference"], frame["student_label"], frame["teacher_label"], labels=labels)
    teacher = metrics.overall(frame["reference"], frame["teacher_label"], frame["teacher_label"], labels=labels)
    overall = {"student": student, "teacher": teacher}
    for name, preds in baselines.items():
        overall[name] = metrics.overall(frame["reference"], pd.Series(list(preds), dtype="object"),
                                        frame["teacher_label"], labels=labels)
    if not with_f1:
        for o in overall.values():
            o["macro_f1"], o["per_class"] = None, {}
    table = metrics.slice_report(frame, slices=slices, with_f1=with_f1, labels=labels)
    severe = severe_counts(frame, spec.severe_errors.classes)
    n = len(frame)
    best = {m: max((v for v in (_metric_values(overall[b]).get(m) for b in baselines) if v is not None),
                   default=None) for m in (A, F1, AGREE, EXACT, FIELD)}
    n_by_metric = {A: student["n_labelled"], F1: student["n_labelled"], EXACT: student["n_labelled"],
                   AGREE: student["n_agree"], FIELD: student["n_labelled"]}
    numbers = gate_check.GateNumbers(
        student=_metric_values(student), teacher=_metric_values(teacher), baseline=best, n=n_by_metric,
        slices=_slice_numbers(table, str(spec.metric)), severe_rate=severe["rate"], n_severe=severe["n_severe"],
        n_rows=n, severe_items=severe["n"], severe_missed=severe["n_severe"], non_severe_items=severe["n_non_severe"],
        false_alarms=severe["false_alarms"])
    return Scored(overall=overall, slices=table, severe=severe, numbers=numbers)


def unreadable(overall: dict) -> dict[str, int]:
    """Rows each model left without a readable answer (missing, or not one of the labels): scored as wrong."""
    return {name: int(o["n_unreadable"]) for name, o in overall.items() if o.get("n_unreadable") is not None}


def slices_json(table: pd.DataFrame) -> list[dict]:
    out = []
    for r in table.itertuples(index=False):
        out.append({"column": r.column, "value": r.value, "n": int(r.n), "n_labelled": int(r.n_labelled),
                    "n_agree": int(r.n_agree),
                    "student": {"accuracy": r.accuracy, "ci_low": r.ci_low, "ci_high": r.ci_high,
                                "agreement": r.agreement, "macro_f1": r.macro_f1},
                    "teacher": {"accuracy": r.teacher_accuracy, "ci_low": r.teacher_ci_low,
                                "ci_high": r.teacher_ci_high},
                    "gap": r.gap})
    return out


def assemble(scored: Scored, *, spec: GateSpec, evaluation: dict, latency: dict, cost: dict,
             teacher: TeacherBar | None = None, extra: dict | None = None) -> tuple[dict, list[gate_check.Criterion]]:
    """The report dict (contract keys) and its criteria; latency and cost figures feed the gate too. Teacher
    figures count only with ``teacher``, the trusted teacher answers they were measured on."""
    bar = teacher or TeacherBar(answers=pd.Series(dtype=object))
    numbers = replace(scored.numbers, p95_latency_ms=(latency.get("student") or {}).get("p95_ms"),
                      cost_per_1k=cost.get("student_per_1k"), cost_source=cost.get("source"),
                      latency_declared_by=(latency.get("student") or {}).get("declared_by"),
                      teacher_source=bar.source, teacher_refused="" if bar.source else bar.why_none())
    criteria = gate_check.check(spec, numbers)
    student, teacher = scored.overall["student"], scored.overall["teacher"]
    gap = {m: (student[m] - teacher[m]) if student.get(m) is not None and teacher.get(m) is not None else None
           for m in ("accuracy", "macro_f1", "agreement")}
    report = {
        "evaluation": evaluation, "overall": scored.overall, "gap_to_teacher": gap,
        "slices": slices_json(scored.slices), "latency": latency, "cost": cost, "severe": scored.severe,
        "criteria": [c.as_dict() for c in criteria], "passed": gate_check.passed(criteria),
        "teacher_bar": bar.as_dict(),
        "unreadable": unreadable(scored.overall), **(extra or {}),
    }
    return clean(report), criteria


def latency_source(student: dict | None) -> str:
    """Where the student's latency came from, in the words every page and the record show."""
    return describe(student)


def summary(report: dict) -> dict:
    o = report["overall"]
    return clean({"passed": report["passed"], "criteria": report["criteria"],
                  "student_accuracy": o["student"].get("accuracy"), "teacher_accuracy": o["teacher"].get("accuracy"),
                  "agreement": o["student"].get("agreement"), "macro_f1": o["student"].get("macro_f1"),
                  "severe_rate": report["severe"]["rate"], "n": report["evaluation"]["n"],
                  "p95_ms": (report["latency"].get("student") or {}).get("p95_ms"),
                  "student_per_1k": report["cost"].get("student_per_1k"),
                  "unreadable": report.get("unreadable", {}),
                  "latency_source": latency_source(report["latency"].get("student")),
                  "holdout_version": report["evaluation"].get("holdout_version"),
                  "failing": [c["name"] for c in report["criteria"] if c["status"] != gate_check.PASS]})
