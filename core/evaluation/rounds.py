"""Rounds: the round a new evaluation joins, and the decisions that close one.

A decision closes its round for good: after iterate the next evaluation opens the next round; after ship or kill
(final) none is recorded, and an evaluation started in a round that was decided while it ran is refused, not
moved. Evaluations are recorded here (step 5a) and decided above (step 5c); both read this one rule.
"""

from __future__ import annotations

from sqlmodel import Session, col

from core.domain.choices import Choice
from core.domain.errors import RoundClosed
from core.store import vouched
from core.store.models import Decision, Project

# --------------------------------------------------------------------------- rounds


def decisions(session: Session, *, project_id: int) -> list[Decision]:
    """The project's decisions the audit chain vouches for (a row forged with raw SQL is not one)."""
    return vouched.rows(session, Decision, Decision.project_id == project_id, order_by=col(Decision.round))


def closing_decision(session: Session, *, project_id: int) -> Decision | None:
    """The ship or kill that closed the project, or None while it is open: a ship or kill is final."""
    return next((d for d in decisions(session, project_id=project_id) if d.decision != Choice.ITERATE), None)


def current_round(session: Session, *, project_id: int) -> int:
    """The open round: 1, or one past the last iterate. A ship or kill closes the project on its round."""
    done = decisions(session, project_id=project_id)
    if not done:
        return 1
    last = done[-1]
    return last.round + 1 if last.decision == Choice.ITERATE else last.round


def decided_on(d: Decision) -> str:
    return f" on evaluation #{d.evaluation_id}" if d.evaluation_id is not None else ""


def require_open_round(session: Session, *, project: Project, started_in: int | None = None) -> int:
    """The round a new evaluation joins: one past the last iterate. A decision closes its round for good, so an
    evaluation is never added to a decided round: after ship or kill none is recorded (the decision is final),
    and one started in a round that was decided while it ran (``started_in``) is refused, not moved."""
    closing = closing_decision(session, project_id=project.id)
    if closing is not None:
        raise RoundClosed(
            f"Project {project.name!r} was decided {closing.decision} in round {closing.round}"
            f"{decided_on(closing)}: that decision is final, so no new evaluation is recorded for it. To evaluate "
            "another student for this task, create a new project with its own gate and holdout.")
    rnd = current_round(session, project_id=project.id)
    if started_in is not None and started_in != rnd:
        d = next((d for d in decisions(session, project_id=project.id) if d.round == started_in), None)
        how = f" was decided {d.decision}{decided_on(d)}" if d else " is not open"
        raise RoundClosed(f"This evaluation was made for round {started_in}, but round {started_in}{how} while it "
                          f"ran and round {rnd} is open: evaluate again, and the new evaluation joins round {rnd}.")
    return rnd
