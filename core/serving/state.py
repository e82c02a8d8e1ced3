"""The rollout state serving obeys, read from core.monitoring.rollout when it exists.

Until that module lands, the same shape is read here from the latest RolloutEvent row, the project's
MonitorConfig settings and the gate (the contract in /work/notes/issue5_contracts.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from core.governance import gate
from core.models import Evaluation, GateVersion, MonitorConfig, RolloutEvent

DEFAULT_TEACHER_SAMPLE_RATE = 0.05
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class RolloutState:
    stage: str  # "off", "shadow" or a percentage such as "25"
    percent: int  # share of traffic offered to the student; 0 for shadow and off
    threshold: float  # below this confidence the teacher answers instead of the student
    must_escalate: list[str] = field(default_factory=list)  # student labels always sent past the student
    teacher_sample_rate: float = DEFAULT_TEACHER_SAMPLE_RATE
    training_run_id: int | None = None
    evaluation_id: int | None = None


def percent_of(stage: str) -> int:
    text = str(stage).strip().rstrip("%")
    return int(text) if text.isdigit() else 0


def state(session: Session, *, project_id: int) -> RolloutState:
    """The rollout module's state when it is installed, otherwise the fallback below."""
    try:
        from core.monitoring.rollout import state as rollout_state
    except ImportError:
        return fallback_state(session, project_id=project_id)
    return rollout_state(session, project_id=project_id)


def fallback_state(session: Session, *, project_id: int) -> RolloutState:
    event = session.exec(select(RolloutEvent).where(RolloutEvent.project_id == project_id)
                         .order_by(col(RolloutEvent.id).desc()).limit(1)).first()
    if event is None:
        return RolloutState(stage="off", percent=0, threshold=DEFAULT_THRESHOLD)
    row = session.exec(select(MonitorConfig).where(MonitorConfig.project_id == project_id)).first()
    settings = row.settings if row else {}
    evaluation = session.get(Evaluation, event.evaluation_id) if event.evaluation_id else None
    training_run_id = event.training_run_id or (evaluation.training_run_id if evaluation else None)
    must = settings.get("must_escalate")
    if must is None:
        must = _severe_classes(session, evaluation)
    return RolloutState(
        stage=event.stage, percent=percent_of(event.stage),
        threshold=event.threshold if event.threshold is not None else DEFAULT_THRESHOLD,
        must_escalate=sorted(str(x) for x in must),
        teacher_sample_rate=float(settings.get("teacher_sample_rate", DEFAULT_TEACHER_SAMPLE_RATE)),
        training_run_id=training_run_id, evaluation_id=event.evaluation_id)


def _severe_classes(session: Session, evaluation: Evaluation | None) -> list[str]:
    gv = session.get(GateVersion, evaluation.gate_version_id) if evaluation else None
    spec = gate.spec_of(gv) if gv else {}
    return list((spec.get("severe_errors") or {}).get("classes") or [])
