"""The success gate's content as a typed contract: metrics, floors, severe classes, field rules.

Pure pydantic: what a sponsor locks (``core.gate``), what the gate check judges (``core.evaluation``) and what
rollout reads, written once below all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Metric(StrEnum):
    ACCURACY = "accuracy"
    MACRO_F1 = "macro-f1"
    AGREEMENT = "teacher-agreement"
    EXACT_MATCH = "exact-match"
    FIELD_ACCURACY = "field-accuracy"
    NDCG = "ndcg@k"  # a ranking's NDCG at the gate's ranking_k, per scikit-learn's ndcg_score
    PAIRWISE = "pairwise-order"  # share of item pairs the student orders as the reference (else teacher) does


class FieldRule(StrEnum):
    """How an extracted field's values are compared (declared per field in the gate)."""

    CASE = "case"  # upper and lower case count as the same
    WHITESPACE = "whitespace"  # runs of whitespace and the ends are ignored
    NUMBER = "number"  # "1,200.50", "1200.5" and 1200.5 are the same number
    DATE = "date"  # "2024-03-01", "1 March 2024" and "03/01/2024" (month first) are the same day


class FloorKind(StrEnum):
    ABSOLUTE = "absolute"  # metric >= value
    RELATIVE_TO_TEACHER = "relative-to-teacher"  # metric >= value x teacher's metric
    RELATIVE_TO_BASELINE = "relative-to-baseline"  # metric >= baseline's metric + value


FLOOR_MEANING = {
    FloorKind.ABSOLUTE: "the student's score must reach this value",
    FloorKind.RELATIVE_TO_TEACHER: "the student must keep this share of the teacher's score",
    FloorKind.RELATIVE_TO_BASELINE: "the student must beat the baseline's score by this margin",
}


def floor_sentence(*, metric: str, kind: str, value: float) -> str:
    """The quality floor in words, with its own number (never an example that could contradict it)."""
    name = {Metric.AGREEMENT: "agreement with the teacher", Metric.MACRO_F1: "macro-F1"}.get(
        Metric(metric), Metric(metric).value.replace("-", " "))
    kind = FloorKind(kind)
    if kind == FloorKind.RELATIVE_TO_TEACHER:
        return f"the student's {name} must reach at least {value:.1%} of the teacher's {name} on the holdout"
    if kind == FloorKind.RELATIVE_TO_BASELINE:
        return (f"the student's {name} must beat the best cheap baseline's by at least {value * 100:.1f} points "
                "on the holdout")
    return f"the student's {name} must reach at least {value:.3g} on the holdout"

Unit = Field(ge=0.0, le=1.0)


class QualityFloor(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    kind: FloorKind = Field(title="Quality floor")
    value: float = Field(ge=0.0, le=1.0, title="Floor value")


class SliceFloor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field(min_length=1, max_length=64, title="Column")
    value: str = Field(min_length=1, max_length=200, title="Value")
    floor: float = Field(ge=0.0, le=1.0, title="Floor")
    min_n: int = Field(ge=1, le=10**9, title="Fewest holdout examples")

    @field_validator("column", "value", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return str(v).strip() if v is not None else v


class FieldFloor(BaseModel):
    """An extracted field's own floor: the student's accuracy on ``field`` over the holdout rows whose reference
    has it, judged only with at least ``min_n`` such rows."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1, max_length=200, title="Field")
    floor: float = Field(ge=0.0, le=1.0, title="Floor")
    min_n: int = Field(default=1, ge=1, le=10**9, title="Fewest holdout examples")


class SevereErrors(BaseModel):
    """Items whose truth is one of ``classes``: ``max_rate`` is the ceiling on the share of them the student
    misses or mislabels, judged only when the holdout holds at least ``min_n`` of them (else INSUFFICIENT
    DATA). Non-severe items labelled severe (false alarms) are reported beside it, not gated."""

    model_config = ConfigDict(extra="forbid")
    classes: list[str] = Field(default_factory=list, max_length=200, title="Severe classes")
    max_rate: float = Field(ge=0.0, le=1.0, title="Most severe items missed (share of them)")
    min_n: int = Field(default=30, ge=1, le=10**9, title="Fewest severe items in the holdout")

    @field_validator("classes")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = [str(c).strip() for c in v]
        if any(not c for c in out):
            raise ValueError("severe classes must not be blank")
        if len(set(out)) != len(out):
            raise ValueError("severe classes are listed twice; list each once")
        return sorted(out)


class GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    metric: Metric = Field(title="Metric")
    quality_floor: QualityFloor = Field(title="Quality floor")
    slice_floors: list[SliceFloor] = Field(default_factory=list, max_length=500, title="Slice floor")
    severe_errors: SevereErrors = Field(default_factory=lambda: SevereErrors(classes=[], max_rate=0.0),
                                        title="Severe errors")
    p95_latency_ms: float = Field(gt=0, le=1e6, title="p95 latency target (ms)")
    cost_per_1k: float = Field(ge=0, le=1e6, title="Cost per 1k target ($)")
    payback_months: float = Field(gt=0, le=120, title="Payback window (months)")
    min_reviews_per_critical_slice: int = Field(default=0, ge=0, le=100_000, title="Reviews per critical slice")
    notes: str = Field(default="", max_length=5000, title="Notes")
    # Students trained elsewhere (issue 10): how rankings and extractions are judged, and whether a p95 latency
    # declared by a person (not measured by Stillroom) may be judged at all.
    ranking_k: int = Field(default=10, ge=1, le=1000, title="k of NDCG@k")
    field_floors: list[FieldFloor] = Field(default_factory=list, max_length=500, title="Field floor")
    field_rules: dict[str, list[FieldRule]] = Field(default_factory=dict, title="Field normalisation rules")
    declared_latency_acceptable: bool = Field(default=False, title="Accept declared latency")

    @model_validator(mode="after")
    def _unique_slices(self) -> GateSpec:
        seen: set[tuple[str, str]] = set()
        for i, s in enumerate(self.slice_floors, start=1):
            key = (s.column, s.value)
            if key in seen:
                raise ValueError(
                    f"Slice floor {i} repeats {s.column}={s.value}: keep one floor per slice"
                )
            seen.add(key)
        fields = [f.field for f in self.field_floors]
        if len(set(fields)) != len(fields):
            raise ValueError("a field has two floors: keep one floor per field")
        return self


def field_key(rules: list[str]) -> Callable[[Any], Any]:
    """The comparison key of one field's value under the gate's normalisation rules for that field."""
    import pandas as pd  # lazy: only scoring fields needs pandas; `stillroom gate show` and the CLI's start do not

    def key(value: Any) -> Any:
        if value is None or isinstance(value, bool) or not rules:
            return value
        text = str(value)
        if FieldRule.WHITESPACE in rules:
            text = " ".join(text.split())
        if FieldRule.CASE in rules:
            text = text.casefold()
        if FieldRule.NUMBER in rules:
            number = pd.to_numeric(re.sub(r"[,\s$€£]", "", text), errors="coerce")
            if pd.notna(number):
                return float(number)
        if FieldRule.DATE in rules:
            day = pd.to_datetime(text, errors="coerce", format="mixed")
            if pd.notna(day):
                return day.date().isoformat()
        return text
    return key


# How the gate page names each metric; a metric without a label here still shows, by its value.
METRIC_LABELS = {
    Metric.ACCURACY: "Accuracy", Metric.MACRO_F1: "Macro-F1", Metric.AGREEMENT: "Agreement with the teacher",
    Metric.EXACT_MATCH: "Exact match", Metric.FIELD_ACCURACY: "Field-level accuracy (structured outputs)",
    Metric.NDCG: "NDCG@k (rankings)", Metric.PAIRWISE: "Pairwise order agreement (rankings)",
}


def metric_label(metric: Metric | str) -> str:
    return METRIC_LABELS.get(Metric(metric), str(metric))


def field_title(model: type[BaseModel], name: str) -> str:
    """A spec field's title: forms label their inputs with it, so a refusal names the field as shown."""
    return model.model_fields[name].title or name


def filled_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a form's table that hold anything: rows left empty are ignored, not refused."""
    return [r for r in rows if any(v not in (None, "") for v in r.values())]
