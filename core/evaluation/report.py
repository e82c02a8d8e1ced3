"""The evaluation report: the predictions table scored overall, per slice and against the gate.

Shared by trained students and imported predictions, so both are judged the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pydantic import BaseModel

from core.domain import metrics
from core.domain.gate_spec import GateSpec, Metric
from core.domain.report import CostFigures, EvaluationReport, Latency, metric_field
from core.evaluation import gate_check
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


def severe_flags(frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """True where the right answer (the reference, else the teacher's) is a severe class and the student missed it."""
    truth = metrics.truth_of(frame)
    student = frame["student_label"]
    return (truth.isin(list(classes)) & (student.isna() | (student != truth))).fillna(False).to_numpy(dtype=bool)


def severe_counts(frame: pd.DataFrame, classes: Sequence[str]) -> dict:
    """The severe-class figures the gate judges: items whose truth is severe and how many the student missed or
    mislabelled (the miss rate, with its Wilson interval); items whose truth is known and not severe and how many
    the student labelled severe (false alarms)."""
    truth, student = metrics.truth_of(frame), frame["student_label"]
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


def metric_values(o: dict) -> dict[str, float | None]:
    """A model's overall figures keyed by gate metric, through the same map the typed report reads them by."""
    return {m.value: o.get(metric_field(m.value)) for m in Metric}


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
    best = {m: max((v for v in (metric_values(overall[b]).get(m) for b in baselines) if v is not None),
                   default=None) for m in (A, F1, AGREE, EXACT, FIELD)}
    n_by_metric = {A: student["n_labelled"], F1: student["n_labelled"], EXACT: student["n_labelled"],
                   AGREE: student["n_agree"], FIELD: student["n_labelled"]}
    numbers = gate_check.GateNumbers(
        student=metric_values(student), teacher=metric_values(teacher), baseline=best, n=n_by_metric,
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


def _json(part: BaseModel | dict | None) -> dict:
    if isinstance(part, BaseModel):
        return part.model_dump(mode="json", exclude_unset=True)
    return part or {}


def assemble(scored: Scored, *, spec: GateSpec, evaluation: dict, latency: Latency | dict, cost: CostFigures | dict,
             teacher: TeacherBar | None = None,
             extra: dict | None = None) -> tuple[EvaluationReport, list[gate_check.Criterion]]:
    """The typed report and its criteria; latency and cost figures feed the gate too. Teacher figures count only
    with ``teacher``, the trusted teacher answers they were measured on. ``extra``: the parts an imported kind
    adds (coverage, ranking, json...)."""
    bar = teacher or TeacherBar(answers=pd.Series(dtype=object))
    latency, cost = Latency.model_validate(_json(latency)), CostFigures.model_validate(_json(cost))
    student_speed = latency.student_figures
    numbers = replace(scored.numbers, p95_latency_ms=student_speed.p95_ms, cost_per_1k=cost.student_per_1k,
                      cost_source=cost.source, latency_declared_by=student_speed.declared_by,
                      teacher_source=bar.source, teacher_refused="" if bar.source else bar.why_none())
    criteria = gate_check.check(spec, numbers)
    student, teacher = scored.overall["student"], scored.overall["teacher"]
    gap = {m: (student[m] - teacher[m]) if student.get(m) is not None and teacher.get(m) is not None else None
           for m in ("accuracy", "macro_f1", "agreement")}
    body = {
        "evaluation": evaluation, "overall": scored.overall, "gap_to_teacher": gap,
        "slices": slices_json(scored.slices), "latency": _json(latency), "cost": _json(cost),
        "severe": scored.severe, "criteria": [c.as_dict() for c in criteria], "passed": gate_check.passed(criteria),
        "teacher_bar": _json(bar.info()), "unreadable": unreadable(scored.overall),
        **{k: _json(v) if isinstance(v, BaseModel) else v for k, v in (extra or {}).items()},
    }
    return EvaluationReport.model_validate(clean(body)), criteria


def summary(report: EvaluationReport) -> dict:
    """The figures the evaluation row keeps beside the report, for lists and the portfolio."""
    student, teacher = report.student, report.teacher
    speed = report.latency.student_figures
    return clean({"passed": report.passed, "criteria": [c.as_dict() for c in report.criteria],
                  "student_accuracy": student.accuracy, "teacher_accuracy": teacher.accuracy,
                  "agreement": student.agreement, "macro_f1": student.macro_f1,
                  "severe_rate": report.severe.rate, "n": report.evaluation.n,
                  "p95_ms": speed.p95_ms, "student_per_1k": report.cost.student_per_1k,
                  "unreadable": report.unreadable, "latency_source": speed.describe(),
                  "holdout_version": report.evaluation.holdout_version,
                  "failing": [c.name for c in report.failing]})
