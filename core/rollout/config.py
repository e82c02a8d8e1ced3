"""A project's monitoring settings (MonitorConfig): rollout stages, drift thresholds, agreement floor, sampling.

Stored values override the defaults; every change is validated as a whole and audited.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import Session, col

from core.access.projects import require_role
from core.domain import gate_spec
from core.domain.errors import InvalidInput
from core.domain.roles import Role
from core.domain.validation import parse
from core.gate import gate
from core.store import audit, vouched
from core.store.models import MonitorConfig, Project, User, utcnow
from core.teacher.chat import DEFAULT_API_KEY_ENV

DEFAULT_STAGES = ("shadow", "5", "25", "100")
# Without an absolute quality floor in the gate, live agreement with the teacher must stay at this level.
DEFAULT_AGREEMENT_FLOOR = 0.95
ENDPOINT, QUEUE = "endpoint", "queue"


class FallbackChoice(BaseModel):
    """The operator's fallback target for a student whose teacher cannot answer live (core.rollout.fallback)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["endpoint", "queue"] = Field(title="Fallback target")
    endpoint: str | None = Field(default=None, max_length=2000, title="Endpoint URL")
    model: str | None = Field(default=None, max_length=200, title="Model")
    api_key_env: str = Field(default=DEFAULT_API_KEY_ENV, title="API key variable")

    @model_validator(mode="after")
    def _complete(self) -> FallbackChoice:
        if self.kind == ENDPOINT and not (self.endpoint or "").strip():
            raise ValueError("an endpoint fallback needs the endpoint URL, e.g. https://llm.example/v1")
        if self.kind == ENDPOINT and not (self.model or "").strip():
            raise ValueError("an endpoint fallback needs the model the endpoint serves, e.g. gpt-4o-mini")
        if self.kind == QUEUE and (self.endpoint or self.model):
            raise ValueError("a queue fallback takes no endpoint or model")
        return self


class MonitorSettings(BaseModel):
    """Every knob of monitoring; None means "derive it from the gate" (agreement floor, must-escalate)."""

    model_config = ConfigDict(extra="forbid")

    # Titles are the operator's form labels, so a refusal names the field as shown there.
    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_STAGES), title="Stages")
    psi_warn: float = Field(default=0.1, gt=0.0, le=10.0, title="PSI warn")
    psi_alert: float = Field(default=0.2, gt=0.0, le=10.0, title="PSI alert")
    agreement_floor: float | None = Field(default=None, ge=0.0, le=1.0, title="Agreement floor")
    teacher_sample_rate: float = Field(default=0.05, ge=0.0, le=1.0, title="Teacher sample rate")
    max_fallback_rate: float = Field(default=0.3, ge=0.0, le=1.0, title="Most fallback allowed (rate)")
    min_requests: int = Field(default=200, ge=1, le=10**9, title="Fewest requests per stage")
    min_slice_requests: int = Field(default=30, ge=1, le=10**9, title="Fewest requests per slice")
    must_escalate: list[str] | None = Field(default=None, title="Must-escalate labels")
    # Set only through core.rollout.fallback.choose, which checks the endpoint against the admin's list.
    fallback: FallbackChoice | None = Field(default=None, title="Fallback target")

    @field_validator("stages", mode="before")
    @classmethod
    def _stages(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.split(",")
        if not isinstance(v, list | tuple) or not v or str(v[0]).strip() != "shadow":
            raise ValueError("stages must start with shadow, e.g. shadow,5,25,100")
        percents = []
        for s in v[1:]:
            text = str(s).strip().rstrip("%")
            if not text.isdigit() or not 0 < int(text) <= 100:
                raise ValueError(f"stage {s!r} is not a percentage between 1 and 100")
            percents.append(int(text))
        if not percents or percents[-1] != 100 or any(b <= a for a, b in zip(percents, percents[1:], strict=False)):
            raise ValueError("the percentages after shadow must increase and end at 100, e.g. shadow,5,25,100")
        return ["shadow", *map(str, percents)]

    @field_validator("must_escalate", mode="before")
    @classmethod
    def _labels(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.split(",")
        return None if v is None else sorted({str(x).strip() for x in v if str(x).strip()})

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitorSettings:
        if self.psi_warn >= self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn:g}) must be below psi_alert ({self.psi_alert:g})")
        return self


def _row(session: Session, *, project_id: int) -> MonitorConfig | None:
    """The project's settings row, or RecordTampered when it was inserted or edited outside Stillroom: the
    rollout's criteria are neither loosened by SQL nor quietly reset to the defaults."""
    return vouched.newest(session, MonitorConfig, MonitorConfig.project_id == project_id,
                          order_by=col(MonitorConfig.id))


def get_config(session: Session, *, project_id: int) -> MonitorSettings:
    row = _row(session, project_id=project_id)
    return MonitorSettings.model_validate(row.settings if row else {})


def _gate_spec(session: Session, project_id: int) -> gate_spec.GateSpec | None:
    current = gate.current(session, project_id=project_id)
    return gate.spec_of(current) if current else None


def agreement_floor(session: Session, *, project_id: int, settings: MonitorSettings | None = None) -> float:
    """The configured floor, else the gate's quality floor when it is absolute, else DEFAULT_AGREEMENT_FLOOR."""
    settings = settings or get_config(session, project_id=project_id)
    if settings.agreement_floor is not None:
        return settings.agreement_floor
    spec = _gate_spec(session, project_id)
    if spec is not None and spec.quality_floor.kind == gate_spec.FloorKind.ABSOLUTE:
        return float(spec.quality_floor.value)
    return DEFAULT_AGREEMENT_FLOOR


def must_escalate(session: Session, *, project_id: int, settings: MonitorSettings | None = None) -> list[str]:
    """Labels always sent to the teacher: the configured list, else the gate's severe classes."""
    settings = settings or get_config(session, project_id=project_id)
    if settings.must_escalate is not None:
        return settings.must_escalate
    spec = _gate_spec(session, project_id)
    return sorted(spec.severe_errors.classes) if spec else []


def p95_target(session: Session, *, project_id: int) -> float | None:
    spec = _gate_spec(session, project_id)
    return spec.p95_latency_ms if spec else None


def set_config(session: Session, *, actor: User, project: Project, changes: dict) -> MonitorSettings:
    """Apply ``changes`` over the stored settings (operator only); the whole result is validated first."""
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="change monitoring settings")
    unknown = sorted(set(changes) - set(MonitorSettings.model_fields))
    if unknown:
        raise InvalidInput(f"unknown monitoring setting {unknown[0]!r}: use one of "
                           f"{', '.join(MonitorSettings.model_fields)}.", field=unknown[0])
    if "fallback" in changes:
        raise InvalidInput("the fallback target is not a monitoring setting: choose it with `stillroom rollout "
                           "fallback` or the Rollout page's Fallback target form, which check the admin's list.",
                           field="fallback")
    return save(session, actor=actor, project=project, changes=changes, action="monitor.config")


def save(session: Session, *, actor: User, project: Project, changes: dict, action: str) -> MonitorSettings:
    """Validate ``changes`` over the stored settings, store the whole and audit it as ``action`` (the caller
    checked the actor's role and anything the settings' own validation cannot, such as an allow-list)."""
    row = _row(session, project_id=project.id)
    merged = parse(MonitorSettings, {**(row.settings if row else {}), **changes})
    stored = merged.model_dump(exclude_defaults=True)
    if row is None:
        row = MonitorConfig(project_id=project.id, settings=stored, updated_by=actor.id)
    else:
        row.settings, row.updated_by, row.updated_at = stored, actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action=action, entity="monitor_config", entity_id=row.id,
                 project_id=project.id, payload={"changes": changes, "settings": merged.model_dump()})
    session.commit()
    return merged
