"""The economics of a student, one rule for every step that prices it: the student's cost per 1,000 requests and
where that figure comes from, the blended cost when part of the traffic falls back to the teacher, and the months
until the saving pays back the build. Qualification, threshold proposals, the payback blocker, the record and the
pages all price with these functions, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# Assumed serving cost of a small student, as a share of the teacher's, when nobody declared one and nothing was
# measured.
DEFAULT_STUDENT_COST_SHARE = 0.10


class CostBasis(StrEnum):
    """How the student's cost per 1,000 was arrived at."""

    DECLARED = "declared"  # the sponsor gave a figure in the qualification
    MEASURED = "measured"  # the teacher's cost x the student's measured compute relative to the teacher's
    ASSUMED = "assumed"  # DEFAULT_STUDENT_COST_SHARE of the teacher's cost
    NOT_GIVEN = "not given"  # no qualification figures at all


# The words an evaluation report has always stored for each basis (stored reports keep verifying by their hash).
_REPORT_BASIS = {
    CostBasis.DECLARED: "qualification",
    CostBasis.MEASURED: "teacher cost x measured compute ratio",
    CostBasis.ASSUMED: f"assumed {DEFAULT_STUDENT_COST_SHARE:.0%} of the teacher's cost",
    CostBasis.NOT_GIVEN: "no qualification figures",
}


@dataclass(frozen=True)
class StudentCost:
    """Serving costs per 1,000 requests, the student's with the sentence that says where it comes from."""

    teacher_per_1k: float | None
    student_per_1k: float | None
    basis: CostBasis
    source: str  # "declared by sam in the qualification", "measured compute ratio x ...", "assumed: ..."

    @property
    def known(self) -> bool:
        return self.teacher_per_1k is not None and self.student_per_1k is not None

    def as_report(self) -> dict[str, object]:
        """The ``cost`` part of an evaluation report, in the keys and words reports have always carried."""
        return {"teacher_per_1k": self.teacher_per_1k, "student_per_1k": self.student_per_1k,
                "basis": _REPORT_BASIS[self.basis], "source": self.source}

    @classmethod
    def from_report(cls, cost: Mapping[str, object] | None, *,
                    teacher_per_1k: float | None = None) -> StudentCost:
        """Read a report's ``cost`` back; ``teacher_per_1k`` stands in where the report has no teacher cost."""
        cost = cost or {}
        teacher, student = _number(cost.get("teacher_per_1k")), _number(cost.get("student_per_1k"))
        return cls(teacher_per_1k=teacher_per_1k if teacher is None else teacher, student_per_1k=student,
                   basis=_basis_of(str(cost.get("basis") or "")), source=str(cost.get("source") or "not given"))


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _basis_of(words: str) -> CostBasis:
    for basis, said in _REPORT_BASIS.items():
        if words == said:
            return basis
    return CostBasis.ASSUMED if words.startswith("assumed") else CostBasis.NOT_GIVEN


def student_cost(*, teacher_per_1k: float | None, declared_per_1k: float | None = None, declared_by: str = "",
                 teacher_ms: float | None = None, student_ms: float | None = None) -> StudentCost:
    """The student's cost per 1,000: the figure ``declared_by`` gave, when given; else the teacher's cost x
    (student ms per example / teacher ms per example), both measured on the same machine; else an assumed share
    (``DEFAULT_STUDENT_COST_SHARE``) of the teacher's cost. The source sentence says which."""
    who = declared_by or "the sponsor"
    if declared_per_1k is not None:
        return StudentCost(teacher_per_1k, declared_per_1k, CostBasis.DECLARED,
                           f"declared by {who} in the qualification")
    if teacher_per_1k is None:
        return StudentCost(None, None, CostBasis.NOT_GIVEN, "not given")
    if teacher_ms and student_ms:
        return StudentCost(teacher_per_1k, teacher_per_1k * student_ms / teacher_ms, CostBasis.MEASURED,
                           f"measured compute ratio x the teacher's cost declared by {who}")
    share = DEFAULT_STUDENT_COST_SHARE
    return StudentCost(teacher_per_1k, teacher_per_1k * share, CostBasis.ASSUMED,
                       f"assumed: {share:.0%} of the teacher's cost declared by {who}")


def blended_per_1k(*, student_per_1k: float, teacher_per_1k: float, fallback_rate: float) -> float:
    """Cost per 1,000 when the student serves ``1 - fallback_rate`` of the traffic and the teacher the rest."""
    return (1.0 - fallback_rate) * student_per_1k + fallback_rate * teacher_per_1k


@dataclass(frozen=True)
class Payback:
    blended_per_1k: float
    monthly_saving: float  # what serving blended saves against the teacher alone, per month
    months: float | None  # None: it never pays back (no saving)


def payback(*, cost: StudentCost, fallback_rate: float, monthly_volume: float, build_cost: float) -> Payback:
    """Months to earn back the build: build cost / ((teacher - blended) x monthly volume / 1,000)."""
    if cost.student_per_1k is None or cost.teacher_per_1k is None:
        raise ValueError("payback needs both the student's and the teacher's cost per 1,000")
    blended = blended_per_1k(student_per_1k=cost.student_per_1k, teacher_per_1k=cost.teacher_per_1k,
                             fallback_rate=fallback_rate)
    saving = (cost.teacher_per_1k - blended) * monthly_volume / 1000
    return Payback(blended, saving, build_cost / saving if saving > 0 else None)


def cost_sentence(cost: StudentCost) -> str:
    """A clause for a person: the student's cost and where it comes from ("... is assumed: 10% of ...")."""
    if cost.student_per_1k is None:
        return "the student's cost per 1,000 is not known"
    return f"the student's cost ({cost.student_per_1k:.4g} per 1,000) is {cost.source}"
