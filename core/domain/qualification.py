"""The sponsor's answers at step 1 (qualify the trigger), as stored on a Qualification row.

Gate templates, cost figures, the payback blocker and the record read them; they are validated into
``QualificationInput`` whenever they are read (``read_inputs``), so a row keeps the JSON it was stored with.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.domain.choices import Play
from core.domain.stored import read_stored


class BetterMove(StrEnum):
    PROMPT_CACHING = "prompt-caching"
    RETRIEVAL = "retrieval-grounding"
    FINE_TUNING = "fine-tuning"
    ROUTING = "routing-fallback"
    WORKFLOW = "workflow-redesign"
    DO_NOTHING = "do-nothing"


class MoveAnswer(StrEnum):
    RULED_OUT = "ruled-out"  # considered, would not fix the problem
    PARTLY = "partly"  # would help but not enough
    WOULD_FIX = "would-fix"  # would likely fix the problem by itself


class QualificationInput(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    # Titles are the Qualify form's labels: a refusal names the field as the sponsor sees it.
    play: Play = Field(title="Play")
    evidence: str = Field(min_length=10, max_length=5000, title="Evidence")
    task_scope: Literal["narrow", "broad"] = Field(default="narrow", title="Task scope")
    monthly_volume: int = Field(ge=0, le=10**12, title="Monthly volume (requests)")
    teacher_cost_per_1k: float = Field(ge=0, le=1e6, title="Teacher cost per 1k requests ($)")
    current_p95_ms: float = Field(gt=0, le=1e7, title="Current p95 latency (ms)")
    target_p95_ms: float = Field(gt=0, le=1e7, title="Target p95 latency (ms)")
    better_first_moves: dict[BetterMove, MoveAnswer] = Field(title="Better first moves")
    teacher_third_party: bool = Field(title="The teacher is a third-party service")
    terms_permit_training: Literal["yes", "no", "unknown"] | None = Field(
        default=None, title="Do its terms permit training on its outputs?")
    build_cost: float = Field(default=20_000.0, ge=0, le=1e9, title="Build cost ($)")
    student_cost_per_1k: float | None = Field(default=None, ge=0, le=1e6, title="Student cost per 1k ($)")

    @model_validator(mode="after")
    def _complete(self) -> QualificationInput:
        missing = [m.value for m in BetterMove if m.value not in self.better_first_moves]
        if missing:
            raise ValueError(
                f"answer the better-first-move check for every option; missing: {', '.join(missing)}"
            )
        if self.teacher_third_party and self.terms_permit_training is None:
            raise ValueError(
                "the teacher is a third-party service, so \"Do its terms permit training on its outputs?\" "
                "(terms_permit_training) needs an answer: yes, no or unknown"
            )
        return self


def read_inputs(stored: Any, *, qualification_id: int | None = None) -> QualificationInput:
    """A Qualification row's stored ``inputs`` as typed answers (RecordTampered naming the field if they no
    longer fit)."""
    return read_stored(QualificationInput, stored, what=f"qualification #{qualification_id}'s inputs")
