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



# --------------------------------------------------------------------------- the one proportion rule

EPS = 1e-9  # a figure equal to its threshold up to float noise meets it


def meets(value: float, threshold: float, *, at_most: bool = False) -> bool:
    """The one comparison of a figure with its threshold: floors are reached from above, ceilings from below."""
    return value <= threshold + EPS if at_most else value + EPS >= threshold


def proportion(name: str, *, k: int, n: int, threshold: float, min_n: int, what: str, at_most: bool = False,
               short: str = INSUFFICIENT) -> Criterion:
    """``k`` of ``n`` against a floor (or a ceiling with ``at_most``), the way the gate judges a slice: below
    ``min_n`` it is not judged (status ``short``); otherwise the point estimate decides and the Wilson 95 %
    interval is reported beside it, so a reader sees how much the verdict could move with more data."""
    # lazy: metrics imports numpy and pandas; criteria stays importable without them for the CLI's start
    from core.domain.metrics import wilson

    direction = "lower" if at_most else "higher"
    value = k / n if n else None
    if n < min_n:
        return Criterion(name, short, value, threshold, n,
                         f"{what}: {k} of {n}, fewer than the {min_n} needed to judge it.", direction)
    low, high = (float(x) for x in wilson(k, n))
    assert value is not None  # n >= min_n >= 1
    ok = meets(value, threshold, at_most=at_most)
    verb = ("is within" if ok else "exceeds") if at_most else ("reaches" if ok else "falls short of")
    kind = "ceiling" if at_most else "floor"
    return Criterion(name, PASS if ok else FAIL, round(value, 6), threshold, n,
                     f"{what}: {k} of {n} = {value:.3f} (95 % interval {low:.3f} to {high:.3f}) {verb} the "
                     f"{kind} of {threshold:g}.", direction, "proportion", low, high)
