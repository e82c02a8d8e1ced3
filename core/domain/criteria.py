"""One criterion: a figure set against its threshold, with a verdict and where the figure came from.

The gate check (``core.evaluation.gate_check``) judges an evaluation with it and rollout judges a stage's
logged traffic with it, so a verdict reads the same whichever step gave it. Fields only one of them fills
(the Wilson interval, the slice, the source) are optional.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

PASS, FAIL, INSUFFICIENT = "PASS", "FAIL", "INSUFFICIENT DATA"
WAITING = "WAITING"  # rollout: too little traffic behind it yet; not a failure, but no advance either
NOT_APPLICABLE = "N/A"  # rollout: the gate sets no target for it
NOT_RECORDED = "not recorded (evaluated before sources were recorded)"


# A pydantic dataclass: positional like the verdicts it is built as, validated when read from stored JSON
# (keys a later version dropped are ignored), and ``dataclasses.replace`` still works on it.
@dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class Criterion:
    name: str
    status: str  # PASS, FAIL, INSUFFICIENT DATA; in rollout also WAITING and N/A
    value: float | None
    threshold: float | None
    n: int | None
    detail: str = ""
    # How the criterion moves and in what unit: kill advice judges progress by these.
    direction: str = "higher"  # "higher" is better (floors) or "lower" (ceilings)
    unit: str = "proportion"  # proportion, ms, cost
    ci_low: float | None = None  # Wilson 95 % interval of a proportion, where one is measured
    ci_high: float | None = None
    slice_column: str | None = None  # set on a slice floor's criterion
    slice_value: str | None = None
    source: str = ""  # where the figure came from: measured, declared by NAME, assumed, teacher run #N by ...

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

