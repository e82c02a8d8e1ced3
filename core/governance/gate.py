"""Step 2 of the playbook: the success gate, locked before anyone trains.

A gate version is inserted already locked and never changes (database triggers
refuse UPDATE and DELETE); its content hash covers the spec, the version, the
reason and the hash of the version it supersedes. Changing the bar means a new
version with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import Session, col

from core.errors import GateNotLocked, GovernanceViolation, InvalidInput
from core.governance import audit, qualification, vouched
from core.governance.audit import canonical_json, sha256_hex
from core.governance.projects import require_role
from core.governance.qualification import Play, Recommendation
from core.models import GateVersion, Project, Role, User
from core.validation import parse


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


def template(play: Play | str, inputs: dict | None = None) -> dict:
    """A starting gate for the play, filled from the qualification where known."""
    play = Play(play)
    inputs = inputs or {}
    teacher_cost = float(inputs.get("teacher_cost_per_1k") or 1.0)
    target_p95 = float(inputs.get("target_p95_ms") or 50.0)
    base = {
        "metric": Metric.ACCURACY.value,
        "quality_floor": {"kind": FloorKind.RELATIVE_TO_TEACHER.value, "value": 0.98},
        "slice_floors": [],
        "severe_errors": {"classes": [], "max_rate": 0.05, "min_n": 30},
        "p95_latency_ms": target_p95,
        "cost_per_1k": round(teacher_cost * 0.2, 4),
        "payback_months": 12.0,
        "min_reviews_per_critical_slice": 0,
        "notes": "",
    }
    if play == Play.COST:
        base["notes"] = "Cost play: quality must hold against the teacher while the cost per request falls."
    elif play == Play.LATENCY:
        base["quality_floor"]["value"] = 0.95
        base["notes"] = "Latency play: the p95 target binds; the quality floor gives a little room."
    elif play == Play.STABILITY:
        base["metric"] = Metric.AGREEMENT.value
        base["quality_floor"] = {"kind": FloorKind.ABSOLUTE.value, "value": 0.95}
        base["notes"] = "Stability play: the student must answer as today's teacher does."
    elif play == Play.SPECIALIZATION:
        base["metric"] = Metric.MACRO_F1.value
        base["quality_floor"] = {"kind": FloorKind.RELATIVE_TO_BASELINE.value, "value": 0.02}
        base["notes"] = "Specialization play: the student must beat the generalist baseline."
    return base


def spec_hash(*, project_id: int, version: int, spec_json: str, reason: str, supersedes: str | None) -> str:
    return sha256_hex(canonical_json({
        "project_id": project_id, "version": version, "spec": json.loads(spec_json),
        "reason": reason, "supersedes": supersedes,
    }))


def verify_gate(gate: GateVersion) -> bool:
    """True when the stored content still matches the hash taken at lock time."""
    return spec_hash(
        project_id=gate.project_id, version=gate.version, spec_json=gate.spec_json,
        reason=gate.reason, supersedes=gate.supersedes_hash,
    ) == gate.content_hash


def lock(
    session: Session, *, actor: User, project: Project, spec: GateSpec | dict, reason: str = ""
) -> GateVersion:
    """Lock a gate: the first version, or a new one that supersedes the current."""
    require_role(session, actor=actor, project=project, role=Role.SPONSOR, doing="lock or version its gate")
    spec = parse(GateSpec, spec)
    q = qualification.latest(session, project_id=project.id)
    if q is None or q.verdict != Recommendation.PROCEED.value:
        state = "has not been qualified" if q is None else f"was qualified with verdict {q.verdict!r}"
        raise GovernanceViolation(
            f"Project {project.name!r} {state}: record a 'proceed' qualification before locking a gate."
        )
    prev = current(session, project_id=project.id)
    reason = (reason or "").strip()
    spec_json = canonical_json(spec.model_dump(mode="json"))
    if prev is not None:
        if not reason:
            raise InvalidInput(
                f"the gate of {project.name!r} is locked at version {prev.version}: "
                "a new version needs a reason for changing the bar.",
                field="reason",
            )
        if prev.spec_json == spec_json:
            raise InvalidInput(
                f"this gate is identical to version {prev.version}: change a criterion or keep the current one.",
                field="spec",
            )
    version = 1 + (prev.version if prev else 0)
    supersedes = prev.content_hash if prev else None
    gate = GateVersion(
        project_id=project.id, version=version, spec_json=spec_json, reason=reason,
        supersedes_hash=supersedes, locked_by=actor.id,
        content_hash=spec_hash(project_id=project.id, version=version, spec_json=spec_json,
                               reason=reason, supersedes=supersedes),
    )
    session.add(gate)
    session.flush()
    audit.record(
        session, actor=actor, action="gate.lock", entity="gate", entity_id=gate.id, project_id=project.id,
        payload={"version": version, "content_hash": gate.content_hash, "reason": reason,
                 "supersedes": supersedes},
    )
    session.commit()
    return gate


def current(session: Session, *, project_id: int) -> GateVersion | None:
    """The gate in force, or GateTampered when it was edited or inserted outside Stillroom (nothing is scored,
    decided or rolled out against it, and no older version quietly stands in for it)."""
    return vouched.newest(session, GateVersion, GateVersion.project_id == project_id,
                          order_by=col(GateVersion.version).desc())


def require_locked(session: Session, *, project: Project, doing: str) -> GateVersion:
    """The current locked gate, or GateNotLocked naming what was attempted."""
    gate = current(session, project_id=project.id)
    if gate is None:
        raise GateNotLocked(
            f"The gate for project {project.name!r} is not locked: the sponsor must lock it before {doing}."
        )
    return gate


def history(session: Session, *, project_id: int) -> list[GateVersion]:
    return vouched.rows(session, GateVersion, GateVersion.project_id == project_id,
                        order_by=col(GateVersion.version), refuse=True)


def get_version(session: Session, *, project: Project, version: int) -> GateVersion:
    found = vouched.rows(session, GateVersion, GateVersion.project_id == project.id,
                         GateVersion.version == version, refuse=True)
    gate = found[0] if found else None
    if gate is None:
        raise InvalidInput(f"project {project.name!r} has no gate version {version}.", field="version")
    return gate


def spec_of(gate: GateVersion) -> dict:
    return json.loads(gate.spec_json)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(x, dict) and "column" in x for x in obj):
        out = {}
        for x in obj:
            rest = {k: v for k, v in x.items() if k not in ("column", "value")}
            out.update(_flatten(rest, f"{prefix}[{x['column']}={x['value']}]"))
        return out
    return {prefix: obj}


@dataclass(frozen=True)
class Change:
    path: str
    change: Literal["added", "removed", "changed"]
    old: Any
    new: Any


def diff(old: GateVersion | dict, new: GateVersion | dict) -> list[Change]:
    """Criterion-level differences between two gate specs."""
    a = _flatten(spec_of(old) if isinstance(old, GateVersion) else old)
    b = _flatten(spec_of(new) if isinstance(new, GateVersion) else new)
    changes = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            changes.append(Change(path, "removed", a[path], None))
        elif path not in a:
            changes.append(Change(path, "added", None, b[path]))
        elif a[path] != b[path]:
            changes.append(Change(path, "changed", a[path], b[path]))
    return changes
