"""Step 1 of the playbook: qualify the trigger before anything is built.

``assess`` is a pure function from the sponsor's answers to a recommendation
(proceed, fix something else first, do nothing, or blocked) with its reasons
and a first payback estimate; ``record`` stores the sponsor's verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from sqlmodel import Session, col

from core.access.projects import require_role
from core.domain import economics
from core.domain.errors import InvalidInput, ProjectBlocked
from core.domain.qualification import BetterMove, MoveAnswer, Play, QualificationInput, read_inputs
from core.domain.roles import Role
from core.domain.validation import parse
from core.store import audit, vouched
from core.store.models import Project, Qualification, User

MOVE_LABELS = {
    BetterMove.PROMPT_CACHING: "Prompt caching",
    BetterMove.RETRIEVAL: "Retrieval / grounding",
    BetterMove.FINE_TUNING: "Fine-tuning the teacher",
    BetterMove.ROUTING: "Routing and fallback between existing models",
    BetterMove.WORKFLOW: "Workflow redesign",
    BetterMove.DO_NOTHING: "Do nothing (live with the pain)",
}


class Recommendation(StrEnum):
    PROCEED = "proceed"
    FIX_FIRST = "fix-first"
    DO_NOTHING = "do-nothing"
    BLOCKED = "blocked"


# Below this many requests a month a distilled student rarely earns back its
# build; the teacher is already cheap enough.
LOW_VOLUME_PER_MONTH = 100_000
# A build that takes longer than this to pay back is not worth starting.
MAX_PAYBACK_MONTHS = 24.0


@dataclass(frozen=True)
class Assessment:
    recommendation: Recommendation
    reasons: list[str]
    monthly_teacher_cost: float
    monthly_student_cost: float
    monthly_saving: float
    payback_months: float | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _money(x: float) -> str:
    return f"${x:,.0f}"


def assess(inputs: QualificationInput | dict) -> Assessment:
    """The recommendation and its reasons, from the sponsor's answers alone."""
    q = parse(QualificationInput, inputs)
    # A first estimate: nothing is measured yet and the student serves every request (no fallback).
    cost = economics.student_cost(teacher_per_1k=q.teacher_cost_per_1k, declared_per_1k=q.student_cost_per_1k)
    paid = economics.payback(cost=cost, fallback_rate=0.0, monthly_volume=q.monthly_volume,
                             build_cost=q.build_cost)
    teacher_month = q.monthly_volume / 1000 * q.teacher_cost_per_1k
    student_month = q.monthly_volume / 1000 * paid.blended_per_1k
    saving, payback = teacher_month - student_month, paid.months
    warnings: list[str] = []
    if cost.basis is economics.CostBasis.ASSUMED:
        warnings.append(
            f"Student serving cost assumed at {economics.DEFAULT_STUDENT_COST_SHARE:.0%} of the teacher's; "
            "give your own estimate for a sharper payback figure."
        )

    def result(rec: Recommendation, reasons: list[str]) -> Assessment:
        return Assessment(rec, reasons, teacher_month, student_month, saving, payback, warnings)

    if q.teacher_third_party and q.terms_permit_training == "no":
        return result(
            Recommendation.BLOCKED,
            ["The teacher's terms do not permit training on its outputs: this teacher cannot be distilled."],
        )
    if q.task_scope == "broad":
        return result(
            Recommendation.DO_NOTHING,
            ["The task is broad: a small student imitates a narrow task well and a broad one poorly; "
             "keep the teacher."],
        )
    if q.monthly_volume < LOW_VOLUME_PER_MONTH:
        return result(
            Recommendation.DO_NOTHING,
            [f"Volume is low ({q.monthly_volume:,} requests a month, under {LOW_VOLUME_PER_MONTH:,}): "
             f"the teacher costs {_money(teacher_month)} a month and is already cheap enough."],
        )
    fixes = [MOVE_LABELS[BetterMove(m)] for m, a in q.better_first_moves.items()
             if a == MoveAnswer.WOULD_FIX and m != BetterMove.DO_NOTHING]
    if q.better_first_moves.get(BetterMove.DO_NOTHING) == MoveAnswer.WOULD_FIX:
        return result(
            Recommendation.DO_NOTHING,
            ["You answered that living with the current state is acceptable: there is no pain to remove."],
        )
    if fixes:
        return result(
            Recommendation.FIX_FIRST,
            [f"A simpler move would likely fix this: {', '.join(fixes)}. Try it before distilling."],
        )
    if q.teacher_third_party and q.terms_permit_training == "unknown":
        return result(
            Recommendation.FIX_FIRST,
            ["Find out whether the teacher's terms permit training on its outputs before building."],
        )
    reasons = _play_reasons(q, teacher_month, saving, payback)
    if reasons[0].startswith("!"):
        return result(Recommendation.DO_NOTHING, [reasons[0][1:]])
    return result(Recommendation.PROCEED, reasons)


def _play_reasons(q: QualificationInput, teacher_month: float, saving: float, payback: float | None) -> list[str]:
    """Reasons for the play; a reason starting with '!' means the play does not hold."""
    if q.play == Play.LATENCY and q.current_p95_ms <= q.target_p95_ms:
        return [f"!The current p95 ({q.current_p95_ms:g} ms) already meets the target "
                f"({q.target_p95_ms:g} ms): there is no latency pain to remove."]
    if q.play == Play.COST:
        if saving <= 0:
            return ["!A student would not cost less than the teacher: there is no saving to earn."]
        if payback is not None and payback > MAX_PAYBACK_MONTHS:
            return [f"!Payback would take {payback:.0f} months, over {MAX_PAYBACK_MONTHS:.0f}: "
                    "the build would not earn back its cost in time."]
    reasons = [f"Narrow task at {q.monthly_volume:,} requests a month; the teacher costs "
               f"{_money(teacher_month)} a month."]
    if saving > 0 and payback is not None:
        reasons.append(f"Estimated saving {_money(saving)} a month pays back the "
                       f"{_money(q.build_cost)} build in {payback:.1f} months.")
    if q.play == Play.LATENCY:
        reasons.append(f"p95 must fall from {q.current_p95_ms:g} ms to {q.target_p95_ms:g} ms; "
                       "a small local student is the usual way there.")
    elif q.play == Play.STABILITY:
        reasons.append("A student you own does not change under you when the provider updates the teacher.")
    elif q.play == Play.SPECIALIZATION:
        reasons.append("A specialised student must beat the generalist baseline: the gate will say by how much.")
    reasons.append("No simpler move would fix it by itself (better-first-move check).")
    return reasons


def record(
    session: Session,
    *,
    actor: User,
    project: Project,
    inputs: QualificationInput | dict,
    verdict: Recommendation | str,
    rationale: str = "",
) -> Qualification:
    """Store the sponsor's verdict beside Stillroom's recommendation."""
    require_role(session, actor=actor, project=project, role=Role.SPONSOR, doing="qualify its trigger")
    q = parse(QualificationInput, inputs)
    try:
        verdict = Recommendation(verdict)
    except ValueError:
        raise InvalidInput(
            f"verdict {verdict!r} is not one of proceed, fix-first, do-nothing.", field="verdict"
        ) from None
    if verdict == Recommendation.BLOCKED:
        raise InvalidInput("verdict must be proceed, fix-first or do-nothing.", field="verdict")
    a = assess(q)
    if a.recommendation == Recommendation.BLOCKED and verdict == Recommendation.PROCEED:
        raise ProjectBlocked(f"Project {project.name!r} is blocked: {a.reasons[0]}")
    rationale = (rationale or "").strip()
    if verdict != a.recommendation and not rationale:
        raise InvalidInput(
            f"your verdict ({verdict.value}) differs from the recommendation "
            f"({a.recommendation.value}): give a rationale for overriding it.",
            field="rationale",
        )
    prev = latest(session, project_id=project.id)
    version = 1 + (prev.version if prev else 0)
    row = Qualification(
        project_id=project.id,
        version=version,
        inputs=q.model_dump(mode="json"),
        recommendation=a.recommendation.value,
        reasons=a.reasons + a.warnings,
        payback_months=a.payback_months,
        verdict=verdict.value,
        rationale=rationale,
        recorded_by=actor.id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, actor=actor, action="qualification.record", entity="qualification",
        entity_id=row.id, project_id=project.id,
        payload={"version": version, "recommendation": a.recommendation.value,
                 "verdict": verdict.value, "rationale": rationale, "inputs": row.inputs},
    )
    session.commit()
    return row


def latest(session: Session, *, project_id: int) -> Qualification | None:
    """The qualification in force, or RecordTampered when it was inserted or edited outside Stillroom: a forged
    'proceed' locks no gate and prices no payback."""
    return vouched.newest(session, Qualification, Qualification.project_id == project_id,
                          order_by=col(Qualification.version).desc())


def history(session: Session, *, project_id: int) -> list[Qualification]:
    return vouched.rows(session, Qualification, Qualification.project_id == project_id,
                        order_by=col(Qualification.version), refuse=True)


def inputs_of(row: Qualification) -> QualificationInput:
    """The sponsor's answers a qualification row holds, typed (RecordTampered when they no longer fit)."""
    return read_inputs(row.inputs, qualification_id=row.id)
