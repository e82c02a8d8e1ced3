"""The one door through which governance rows are read: a row comes back only when the audit chain vouches for it.

A row is vouched when its content still hashes to what its latest audit event recorded (and, with
``STILLROOM_AUDIT_KEY``, that event's HMAC holds): see ``core.store.integrity``. A sign-off, decision,
threshold, rollout stage, token, role, gate or account INSERTed or edited with raw SQL is therefore invisible to
every ship check, rollout, serving process and identity check, not only reported by ``audit verify`` afterwards.
Each read costs one ``vouched_ids`` call (two queries), scoped to the projects of the rows it found.

tests/store/test_vouched_consumers.py fails when code in core/ or pages/ reads a table of ``GOVERNED`` any other way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, select

from core.domain.errors import RecordTampered
from core.store import integrity, rowhash
from core.store.models import (
    AccessToken,
    Decision,
    GateVersion,
    HoldoutVersion,
    MonitorConfig,
    Qualification,
    RoleAssignment,
    RolloutEvent,
    SignOff,
    ThresholdProposal,
    User,
    id_of,
    project_of,
    table_of,
)

M = TypeVar("M", bound=SQLModel)

# The tables a decision, a rollout or an identity rests on: read only through this module.
GOVERNED: tuple[type[SQLModel], ...] = (
    User, RoleAssignment, AccessToken, Qualification, GateVersion, HoldoutVersion, SignOff, ThresholdProposal,
    Decision, RolloutEvent, MonitorConfig,
)

_ENTITY: dict[type[SQLModel], str] = {spec.model: name for name, spec in rowhash.TRACKED.items()}


def entity_of(model: type[SQLModel]) -> str:
    """The audit events' entity name for ``model``'s rows."""
    return _ENTITY[model]


def _scope(model: type[SQLModel], found: Iterable[SQLModel]) -> list[int] | None:
    """The projects to check events in: those of ``found``, or None (the whole table) when the table has no
    project column or a row belongs to none (a person's CLI token)."""
    if "project_id" not in table_of(model).c:
        return None
    pids = [project_of(r) for r in found]
    return sorted({p for p in pids if p is not None}) if None not in pids else None


def _ordered(stmt: Any, order_by: Any) -> Any:
    if order_by is None:
        return stmt
    return stmt.order_by(*(order_by if isinstance(order_by, tuple) else (order_by,)))


def keep(session: Session, model: type[M], found: list[M], *, refuse: bool = False) -> list[M]:
    """``found`` (rows of ``model`` read in this session) without those the chain does not vouch for; with
    ``refuse``, RecordTampered (GateTampered for a gate) at the first such row instead."""
    if not found:
        return found
    ok = integrity.vouched_ids(session, entity_of(model), project_ids=_scope(model, found))
    if refuse:
        for row in (r for r in found if id_of(r) not in ok):
            require(session, row)
    return [r for r in found if id_of(r) in ok]


def rows(session: Session, model: type[M], *where: Any, order_by: Any = None, refuse: bool = False) -> list[M]:
    """The vouched rows of ``model`` matching ``where``, in ``order_by`` order (a column or a tuple of them).

    ``refuse``: raise at a row the chain does not vouch for rather than skip it, for a table whose rows are each
    in force (a project's gates), where skipping an edited one would silently put an older one back in force.
    """
    stmt = _ordered(select(model).where(*where), order_by)
    return keep(session, model, list(session.exec(stmt).all()), refuse=refuse)


def values(session: Session, model: type[SQLModel], *columns: Any, where: tuple[Any, ...] = (),
           order_by: Any = None) -> list[tuple[Any, ...]]:
    """``columns`` of the vouched rows of ``model`` matching ``where``, as tuples: for reads over many rows (the
    portfolio's roster of every project) where building ORM objects would cost more than the check."""
    table = table_of(model)
    key = [table.c.id] + ([table.c.project_id] if "project_id" in table.c else [])
    found = session.exec(_ordered(select(*key, *columns).where(*where), order_by)).all()
    if not found:
        return []
    pids: set[int | None] = {r[1] for r in found} if len(key) == 2 else {None}
    scope = sorted({p for p in pids if p is not None}) if None not in pids else None
    ok = integrity.vouched_ids(session, entity_of(model), project_ids=scope)
    return [tuple(r[len(key):]) for r in found if r[0] in ok]


def last_per_project(session: Session, model: type[M], project_ids: list[int], *, order_by: Any) -> dict[int, M]:
    """{project id: its last vouched row of ``model`` in ``order_by`` order}, for many projects in one read."""
    found = rows(session, model, table_of(model).c.project_id.in_(project_ids), order_by=order_by)
    return {pid: r for r in found if (pid := project_of(r)) is not None}


def first(session: Session, model: type[M], *where: Any, order_by: Any = None) -> M | None:
    """The first vouched row in ``order_by`` order, or None: a forged newer row does not hide a genuine one."""
    found = rows(session, model, *where, order_by=order_by)
    return found[0] if found else None


def newest(session: Session, model: type[M], *where: Any, order_by: Any) -> M | None:
    """The first row in ``order_by`` order, or None; RecordTampered (GateTampered) when the chain does not vouch
    for it: for a row in force (the newest gate, the monitoring settings), which an older or default one must not
    quietly stand in for."""
    row = session.exec(_ordered(select(model).where(*where), order_by).limit(1)).first()
    return require(session, row) if row is not None else None


def get(session: Session, model: type[M], row_id: int | None) -> M | None:
    """The row with id ``row_id`` when it exists and the chain vouches for it, else None."""
    row = session.get(model, row_id) if row_id is not None else None
    return row if row is not None and keep(session, model, [row]) else None


def one(session: Session, model: type[M], row_id: int) -> M:
    """The row with id ``row_id``, or RecordTampered when it is gone or was inserted or edited outside Stillroom
    (for rows another vouched row points at: a job's author, an evaluation's gate)."""
    row = session.get(model, row_id)
    if row is None:
        raise RecordTampered(f"{table_of(model).name} #{row_id} is gone although other records point at it: it was "
                             "deleted outside Stillroom. Run `stillroom audit verify` and restore from backup.")
    return require(session, row)


def require(session: Session, row: M) -> M:
    """``row`` itself, or RecordTampered when it was inserted or edited outside Stillroom (GateTampered for a
    gate, which is also checked against its lock-time content hash)."""
    if isinstance(row, GateVersion):
        integrity.require_gate_intact(session, row)  # returns the same gate
    else:
        integrity.require_vouched(session, entity_of(type(row)), row)
    return row
