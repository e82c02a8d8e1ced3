"""Separation of duties over history: who built the evidence behind an evaluation never judges it.

The rule reads the authors of the evidence (the ``created_by`` of every row the evaluation rests on,
following its lineage), not the role table: a driver whose role was removed, or who was later made a
validator, still authored what she built. Where a row names no author, the audit event that created it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.domain.errors import SeparationOfDuties
from core.store import vouched
from core.store.models import (
    AuditEvent,
    Dataset,
    Evaluation,
    Holdout,
    Project,
    TeacherFilter,
    TeacherRun,
    TrainingRun,
    User,
)


@dataclass(frozen=True)
class Evidence:
    """One row an evaluation rests on and the person who created it."""

    what: str  # as a person reads it: "training run #3"
    entity: str  # the audit event's entity name
    entity_id: int
    author_id: int | None
    author: str | None  # username, from the row or its audit event


def _author(session: Session, *, entity: str, entity_id: int, user_id: int | None) -> tuple[int | None, str | None]:
    if user_id is not None:
        user = vouched.get(session, User, user_id)
        return user_id, user.username if user else None
    actor = session.exec(select(AuditEvent.actor).where(AuditEvent.entity == entity,
                                                        AuditEvent.entity_id == str(entity_id))
                         .order_by(col(AuditEvent.id)).limit(1)).first()
    if actor is None:
        return None, None
    user = vouched.first(session, User, User.username == actor)
    return (user.id if user else None), actor


def _datasets(session: Session, dataset_id: int | None, seen: set[int]) -> list[Dataset]:
    """A dataset version and every version it was derived from (import, dedup, oversample...)."""
    out = []
    while dataset_id is not None and dataset_id not in seen:
        seen.add(dataset_id)
        row = session.get(Dataset, dataset_id)
        if row is None:
            break
        out.append(row)
        dataset_id = row.parent_id
    return out


def _teacher_runs(session: Session, run_id: int | None, seen: set[int]) -> list[TeacherRun]:
    """A teacher run and, for a combined run, the runs it combined."""
    out, todo = [], [run_id]
    while todo:
        rid = todo.pop()
        if rid is None or rid in seen:
            continue
        seen.add(rid)
        run = session.get(TeacherRun, rid)
        if run is None:
            continue
        out.append(run)
        if run.adapter == "ensemble":
            todo += [int(r) for r in (run.config or {}).get("runs", [])]
    return out


def evidence_of(session: Session, *, evaluation: Evaluation) -> list[Evidence]:
    """Every row behind the evaluation, with its author: the evaluation, the student and its teacher
    runs and filter, the holdout, and each dataset version they were made from."""
    rows: list[tuple[str, str, object]] = [(f"evaluation #{evaluation.id}", "evaluation", evaluation)]
    seen_ds: set[int] = set()
    dataset_ids: list[int] = []
    holdout = session.exec(select(Holdout).where(Holdout.project_id == evaluation.project_id)).first()
    if holdout is not None:
        rows.append((f"the holdout (#{holdout.id})", "holdout", holdout))
        dataset_ids.append(holdout.dataset_id)
    run = session.get(TrainingRun, evaluation.training_run_id) if evaluation.training_run_id else None
    if run is not None:
        rows.append((f"training run #{run.id}", "training_run", run))
        if run.teacher_filter_id is not None and (f := session.get(TeacherFilter, run.teacher_filter_id)):
            rows.append((f"teacher filter #{f.id}", "teacher_filter", f))
        for t in _teacher_runs(session, run.teacher_run_id, set()):
            rows.append((f"teacher run #{t.id}", "teacher_run", t))
            dataset_ids.append(t.dataset_id)
    for ds_id in dataset_ids:
        for d in _datasets(session, ds_id, seen_ds):
            rows.append((f"dataset #{d.id} ({d.operation})", "dataset", d))
    out = []
    for what, entity, row in rows:
        author_id, author = _author(session, entity=entity, entity_id=row.id,
                                    user_id=getattr(row, "created_by", None))
        out.append(Evidence(what, entity, row.id, author_id, author))
    return out


def authored_by(session: Session, *, evaluation: Evaluation, person: User) -> list[Evidence]:
    """The evidence behind ``evaluation`` that ``person`` created."""
    return [e for e in evidence_of(session, evaluation=evaluation)
            if e.author_id == person.id or (e.author_id is None and e.author == person.username)]


def refusal(session: Session, *, actor: User, project: Project, evaluation: Evaluation, doing: str) -> str | None:
    """The sentence refusing ``actor`` to ``doing`` on ``evaluation``, or None when they built none of it."""
    mine = authored_by(session, evaluation=evaluation, person=actor)
    if not mine:
        return None
    named = ", ".join(dict.fromkeys(e.what for e in mine))
    return (f"{actor.username} built evidence behind evaluation #{evaluation.id} of project {project.name!r} "
            f"({named}) and cannot {doing}: whoever builds the student must not validate it, whatever roles "
            "they hold now. Ask a validator who took no part in building it.")


def require_independent(session: Session, *, actor: User, project: Project, evaluation: Evaluation,
                        doing: str) -> None:
    """Raise SeparationOfDuties when ``actor`` created any evidence behind ``evaluation``."""
    sentence = refusal(session, actor=actor, project=project, evaluation=evaluation, doing=doing)
    if sentence:
        raise SeparationOfDuties(sentence)
