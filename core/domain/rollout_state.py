"""The rollout state serving obeys, as one typed value: the stage in force, the share of traffic it offers the
student, and the confidence below which the teacher answers instead. ``core.rollout.rollout.state`` builds it from
the rollout events the audit chain vouches for; ``core.serving.router`` routes on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OFF = "off"
SHADOW = "shadow"
# Where no fallback threshold is in force or proposed yet, the teacher answers below this confidence: the Review
# page's starting point, and the rollout state's before a rollout starts (a rollout only starts with a proposal).
DEFAULT_FALLBACK_THRESHOLD = 0.7


def percent_of(stage: str) -> int:
    """The share of traffic offered to the student at ``stage``: 0 when off and in shadow, else the stage's whole
    percentage, stored as digits ("25"). Anything else ("25%", "half") is refused, never read as 0."""
    if stage in (OFF, SHADOW):
        return 0
    if stage.isdigit() and 0 < int(stage) <= 100:
        return int(stage)
    raise ValueError(f"rollout stage {stage!r} is not {OFF}, {SHADOW} or a whole percentage from 1 to 100 "
                     "written in digits, e.g. 25")


@dataclass(frozen=True)
class RolloutState:
    """What the serving process needs to route a request; ``percent`` follows from the stage, never given."""

    stage: str  # "off", "shadow" or a whole percentage in digits such as "25"
    threshold: float  # below this confidence the teacher answers instead of the student
    must_escalate: list[str]  # student labels always sent past the student
    teacher_sample_rate: float  # share of confident requests the teacher is still asked about
    training_run_id: int | None = None
    evaluation_id: int | None = None
    # "queue" when nothing answers live behind the student (a file teacher's student whose operator chose a
    # person's queue): every answer the student does not give goes to the queue; else "teacher".
    fallback: str = "teacher"
    percent: int = field(init=False)  # share of traffic offered to the student; 0 in shadow and off

    def __post_init__(self) -> None:
        object.__setattr__(self, "percent", percent_of(self.stage))
