"""Step 2 of the playbook: the success gate, locked before anyone trains.

A gate version is inserted already locked and never changes (database triggers
refuse UPDATE and DELETE); its content hash covers the spec, the version, the
reason and the hash of the version it supersedes. Changing the bar means a new
version with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlmodel import Session, col

from core.access.projects import require_role
from core.domain.errors import GateNotLocked, GovernanceViolation, InvalidInput
from core.domain.gate_spec import (
    FloorKind,
    GateSpec,
    Metric,
)
from core.domain.hashing import canonical_json
from core.domain.roles import Role
from core.domain.validation import parse
from core.qualify import qualification
from core.qualify.qualification import Play, Recommendation
from core.store import audit, vouched
from core.store.integrity import spec_hash, verify_gate
from core.store.models import GateVersion, Project, User


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


def spec_of(gate: GateVersion) -> GateSpec:
    """The locked spec, validated from the stored JSON text (which the gate's hash covers and nothing rewrites)."""
    return GateSpec.model_validate_json(gate.spec_json)


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
    a = _flatten(json.loads(old.spec_json) if isinstance(old, GateVersion) else old)
    b = _flatten(json.loads(new.spec_json) if isinstance(new, GateVersion) else new)
    changes = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            changes.append(Change(path, "removed", a[path], None))
        elif path not in a:
            changes.append(Change(path, "added", None, b[path]))
        elif a[path] != b[path]:
            changes.append(Change(path, "changed", a[path], b[path]))
    return changes


def hash_verifies(gate: GateVersion) -> bool:
    """True when the locked gate's stored content still matches the hash taken when it was locked."""
    return verify_gate(gate)
