"""The evaluation report as a typed contract: what scoring a student on the holdout found, part by part.

``core.evaluation.report`` builds it, ``core.evaluation.runs`` stores it as canonical JSON and validates the
stored bytes into it when read (after their hash is checked), and review, decision, rollout, the CLI and the
pages read its attributes. Reports stored by earlier versions lack some parts: those fields are optional, and
parts a later version adds are kept (``extra="allow"``), so an old report loads and its stored hash, taken
over the bytes as stored, still verifies.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.domain.criteria import NOT_RECORDED, PASS, Criterion
from core.domain.gate_spec import Metric

# Where each gate metric lives among a model's overall figures. Exact match scores the whole answer, so it is
# the accuracy of a JSON answer; a ranking's NDCG is stored once as ``ndcg_at_k`` whatever the gate's k.
METRIC_FIELDS: dict[str, str] = {
    Metric.ACCURACY.value: "accuracy",
    Metric.MACRO_F1.value: "macro_f1",
    Metric.AGREEMENT.value: "agreement",
    Metric.EXACT_MATCH.value: "accuracy",
    Metric.FIELD_ACCURACY.value: "field_accuracy",
    Metric.NDCG.value: "ndcg_at_k",
    Metric.PAIRWISE.value: "pairwise_order",
}
_NDCG_AT = re.compile(r"ndcg@\d+")


def metric_field(metric: str) -> str:
    """The overall figure a gate metric names, also as people write it with its k (``ndcg@5``)."""
    key = str(metric)
    if _NDCG_AT.fullmatch(key):
        key = Metric.NDCG.value
    if key not in METRIC_FIELDS:
        raise KeyError(f"{metric!r} is not a gate metric: use one of {', '.join(METRIC_FIELDS)}")
    return METRIC_FIELDS[key]


class _Part(BaseModel):
    # Parts keep what they were stored with, so figures added by later versions survive a round trip.
    model_config = ConfigDict(extra="allow", frozen=True)


class ClassRow(_Part):
    precision: float | None = None
    recall: float | None = None
    n: int = 0


class OverallMetrics(_Part):
    """One model's figures over the whole holdout (the student, the teacher, a baseline)."""

    n: int | None = None
    n_labelled: int | None = None
    n_unreadable: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    agreement: float | None = None
    n_agree: int | None = None
    per_class: dict[str, ClassRow] = Field(default_factory=dict)
    field_accuracy: float | None = None  # extraction
    ndcg_at_k: float | None = None  # ranking, at ``k``
    pairwise_order: float | None = None
    k: int | None = None

    def value_of(self, metric: str) -> float | None:
        """The figure a gate metric (or a criterion's metric name) refers to."""
        value = getattr(self, metric_field(metric))
        return None if value is None else float(value)


class Interval(_Part):
    accuracy: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    agreement: float | None = None
    macro_f1: float | None = None


class SliceRow(_Part):
    """One slice (column = value): its size, the student's and teacher's accuracy with Wilson intervals."""

    column: str
    value: str
    n: int
    n_labelled: int | None = None
    n_agree: int | None = None
    student: Interval = Field(default_factory=Interval)
    teacher: Interval = Field(default_factory=Interval)
    gap: float | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, v: Any) -> str:
        return str(v)


class SevereCounts(_Part):
    """Items whose truth is a severe class and how many the student missed (with its interval); false alarms."""

    rate: float | None = None  # miss rate: n_severe / n
    n_severe: int = 0  # missed
    n: int = 0  # severe items
    ci_low: float | None = None
    ci_high: float | None = None
    false_alarms: int | None = None
    n_non_severe: int | None = None
    false_alarm_rate: float | None = None
    classes: list[str] = Field(default_factory=list)


class LatencyFigures(_Part):
    """One model's timings, and whether Stillroom measured them or a person declared them."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    batch_throughput: float | None = None
    ms_per_example: float | None = None
    source: str | None = None  # measured, declared, none
    how: str | None = None
    declared_by: str | None = None
    method: str | None = None
    where: str | None = None
    recorded_by: str | None = None

    def describe(self) -> str:
        """One line naming where the latency came from: the words every page and the record show."""
        if self.source == "declared":
            return f"declared by {self.declared_by} ({self.method}; {self.where}), not measured by Stillroom"
        if self.p95_ms is None:
            return "not measured"
        return f"measured by Stillroom: {self.how or 'the trained student, timed on this machine'}"


class Latency(_Part):
    student: LatencyFigures | None = None
    teacher: LatencyFigures | None = None

    @property
    def student_figures(self) -> LatencyFigures:
        return self.student or LatencyFigures()


class CostFigures(_Part):
    """Cost per 1,000 requests of the teacher and the student, and whose figure the student's is."""

    teacher_per_1k: float | None = None
    student_per_1k: float | None = None
    basis: str | None = None
    source: str | None = None  # "declared by sam in the qualification", "assumed: ...", "measured ..."


class TeacherBarInfo(_Part):
    """The trusted teacher run the teacher figures rest on, or why each run was refused."""

    run: int | None = None
    source: str | None = None
    refused: list[str] = Field(default_factory=list)


class FileTeacherCheck(_Part):
    """An imported file's teacher column against the trusted teacher: counted, never used."""

    given: int = 0
    compared: int = 0
    mismatches: int = 0
    used: bool = False


class EvaluationMeta(_Part):
    """What was evaluated, against which gate and holdout."""

    project_id: int | None = None
    round: int = 1
    gate_version: int | None = None
    gate_hash: str | None = None
    training_run_id: int | None = None
    teacher_run_id: int | None = None
    source: str | None = None  # trained, imported
    kind: str = "label"  # label, json, text, ranking
    file: str | None = None
    holdout_fingerprint: str | None = None
    holdout_version: int | None = None
    n: int = 0


class GateCheck(_Part):
    """The gate check's verdict: every criterion, and whether all passed."""

    criteria: list[Criterion] = Field(default_factory=list)
    passed: bool = False


class EvaluationReport(GateCheck):
    """The whole report. Imported evaluations add their kind's parts (coverage, ranking, json, text...)."""

    evaluation: EvaluationMeta = Field(default_factory=EvaluationMeta)
    overall: dict[str, OverallMetrics] = Field(default_factory=dict)  # student, teacher, majority, tfidf
    gap_to_teacher: dict[str, float | None] = Field(default_factory=dict)
    slices: list[SliceRow] = Field(default_factory=list)
    latency: Latency = Field(default_factory=Latency)
    cost: CostFigures = Field(default_factory=CostFigures)
    severe: SevereCounts = Field(default_factory=SevereCounts)
    teacher_bar: TeacherBarInfo | None = None  # absent from reports made before the teacher's bar
    file_teacher: FileTeacherCheck | None = None  # imports only
    unreadable: dict[str, int] = Field(default_factory=dict)

    @field_validator("criteria", mode="after")
    @classmethod
    def _sourced(cls, criteria: list[Criterion]) -> list[Criterion]:
        # A report from before sources were recorded reads "not recorded" rather than a guess.
        return [c if c.source else Criterion(**{**c.as_dict(), "source": NOT_RECORDED}) for c in criteria]

    @property
    def student(self) -> OverallMetrics:
        return self.overall.get("student") or OverallMetrics()

    @property
    def teacher(self) -> OverallMetrics:
        return self.overall.get("teacher") or OverallMetrics()

    @property
    def failing(self) -> list[Criterion]:
        return [c for c in self.criteria if c.status != PASS]

    def part(self, name: str) -> Any:
        """A part an imported kind added (``coverage``, ``ranking``, ``json``...), or None."""
        return (self.model_extra or {}).get(name)

    def stored_json(self) -> dict[str, Any]:
        """The JSON that is stored: the parts it was built or read with, nothing added."""
        return self.model_dump(mode="json", exclude_unset=True)

    def slice_criterion(self, column: str, value: str) -> Criterion | None:
        """The gate check's criterion for one slice floor (older reports name it only: found by its name)."""
        for c in self.criteria:
            if (c.slice_column, c.slice_value) == (column, value):
                return c
        plain = f"slice {column}={value}"
        return next((c for c in self.criteria if c.name == plain or c.name.startswith(plain + ":")), None)
