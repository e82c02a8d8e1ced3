"""The rollout state serving obeys, as core.rollout.rollout reads it, and the shape routing needs of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from core.rollout.rollout import state as rollout_state

DEFAULT_TEACHER_SAMPLE_RATE = 0.05


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
    """The stage serving obeys: core.rollout.rollout's, read from the rollout events the audit chain vouches
    for (imported here, not at the top, because that module reads the request log this package writes)."""
    return rollout_state(session, project_id=project_id)
