"""What a round asks the driver to collect: the sponsor's data request on an iterate decision, and the
operator's re-distillation request from drifted traffic.

Both rows keep the JSON they were stored with (``Decision.data_request``, ``RedistillRequest.drift``);
``read_data_request`` and ``read_redistill`` validate it into these models whenever it is read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.domain.stored import read_stored

SliceValue = str | int | float | bool


class SliceWanted(BaseModel):
    """One slice an iterate decision asks more examples of: for the holdout (too few to judge it) or for
    training (judged, under its floor)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    column: str
    value: SliceValue
    n: int = Field(ge=0)  # scored holdout examples of the slice when the decision was taken
    status: str
    more_examples: int = Field(ge=0)
    for_: Literal["holdout", "training"] = Field(alias="for")
    why: str

    def sentence(self) -> str:
        return f"{self.column}={self.value} ({self.status}): {self.more_examples} more {self.for_} examples"


class DataRequest(BaseModel):
    """An iterate decision's request: the slices wanted and the criteria still failing, for the next round."""

    model_config = ConfigDict(extra="forbid")
    round: int
    next_round: int
    slices: list[SliceWanted] = Field(default_factory=list)
    failing_criteria: list[str] = Field(default_factory=list)


class DriftFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature: str
    psi: float | None
    js: float | None
    status: str


class DriftSlice(BaseModel):
    """A slice value over-represented live, or one whose sampled agreement fell under the floor."""

    model_config = ConfigDict(extra="forbid")
    column: str
    value: SliceValue
    live_share: float
    training_share: float | None
    examples_wanted: int
    why: str


class RedistillDrift(BaseModel):
    """What an operator's re-distillation request records: why it was opened and what to collect."""

    model_config = ConfigDict(extra="forbid")
    triggers: list[str]
    since: str | None
    n_live: int
    reference: str
    agreement: float | None
    agreement_floor: float
    features: list[DriftFeature]
    slices: list[DriftSlice]


def read_data_request(stored: Any, *, decision_id: int | None = None) -> DataRequest | None:
    """A Decision row's stored request, typed; None for a ship or kill (they store an empty request)."""
    if not stored:
        return None
    return read_stored(DataRequest, stored, what=f"decision #{decision_id}'s data request")


def read_redistill(stored: Any, *, request_id: int | None = None) -> RedistillDrift:
    return read_stored(RedistillDrift, stored, what=f"re-distillation request #{request_id}")
