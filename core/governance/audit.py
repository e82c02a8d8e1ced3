"""The audit log: an append-only hash chain of every state change.

Each event's hash covers the previous event's hash and the event's own fields,
so editing, deleting or reordering a row outside the app breaks a link that
``verify`` reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from core.models import AuditEvent, User

GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> str:
    """The one serialisation every hash in Stillroom is computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def event_hash(
    prev_hash: str,
    ts: str,
    actor: str,
    project_id: int | None,
    action: str,
    entity: str,
    entity_id: str,
    payload: str,
) -> str:
    pid = "" if project_id is None else str(project_id)
    return sha256_hex("\x1f".join((prev_hash, ts, actor, pid, action, entity, entity_id, payload)))


def head_hash(session: Session) -> str:
    last = session.exec(select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return last or GENESIS_HASH


def record(
    session: Session,
    *,
    actor: User | str,
    action: str,
    entity: str,
    entity_id: Any = "",
    project_id: int | None = None,
    payload: dict | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (the caller commits).

    Call it in the same session as the state change it records, so both commit
    or neither does.
    """
    actor_name = actor if isinstance(actor, str) else actor.username
    prev = head_hash(session)
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    body = canonical_json(payload or {})
    eid = str(entity_id)
    ev = AuditEvent(
        ts=ts,
        actor=actor_name,
        project_id=project_id,
        action=action,
        entity=entity,
        entity_id=eid,
        payload=body,
        prev_hash=prev,
        hash=event_hash(prev, ts, actor_name, project_id, action, entity, eid, body),
    )
    session.add(ev)
    # Flushed at once so a second event in the same transaction chains onto it.
    session.flush()
    return ev


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_hash: str
    broken_at: int | None = None
    problem: str = ""

    def sentence(self) -> str:
        if self.ok:
            return f"Audit chain intact: {self.checked} events verified, head {self.head_hash[:16]}."
        return f"Audit chain broken at event #{self.broken_at}: {self.problem}"


def verify(engine: Engine) -> ChainReport:
    """Walk the whole chain in id order and report the first broken link."""
    prev = GENESIS_HASH
    prev_id: int | None = None
    checked = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "SELECT id, ts, actor, project_id, action, entity, entity_id, payload, prev_hash, hash "
            "FROM audit_event ORDER BY id"
        )
        while rows := cur.fetchmany(10_000):
            for eid, ts, actor, pid, action, entity, entity_id, payload, prev_hash, stored in rows:
                if prev_hash != prev:
                    after = f"event #{prev_id}" if prev_id is not None else "the start of the chain"
                    return ChainReport(
                        False, checked, prev, eid,
                        f"it does not follow {after}: an event was deleted, inserted or reordered there.",
                    )
                if event_hash(prev_hash, ts, actor, pid, action, entity, entity_id, payload) != stored:
                    return ChainReport(
                        False, checked, prev, eid,
                        "its content no longer matches its hash: the row was edited outside Stillroom.",
                    )
                prev, prev_id = stored, eid
                checked += 1
        cur.close()
    finally:
        raw.close()
    return ChainReport(True, checked, prev)


def list_events(
    session: Session,
    *,
    project_id: int | None = None,
    action: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[AuditEvent], int]:
    """Newest first, with the total count for paging."""
    q = select(AuditEvent)
    n = select(func.count()).select_from(AuditEvent)
    if project_id is not None:
        q = q.where(AuditEvent.project_id == project_id)
        n = n.where(AuditEvent.project_id == project_id)
    if action:
        q = q.where(AuditEvent.action == action)
        n = n.where(AuditEvent.action == action)
    events = session.exec(q.order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)).all()
    return list(events), session.exec(n).one()
