"""What an attacker with the database file does to the record (issue 9): drop the guards, edit, re-hash."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.governance import audit
from core.models import APPEND_ONLY_TABLES


def drop_guards(engine: Engine, *tables: str) -> None:
    """Drop the append-only triggers of ``tables`` (all of them by default), as the file's owner can."""
    with engine.begin() as conn:
        for table in tables or APPEND_ONLY_TABLES:
            for op in ("update", "delete", "replace"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))


def raw(engine: Engine, *statements: str, params: dict | None = None) -> None:
    drop_guards(engine)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s), params or {})


def rechain(engine: Engine, *, from_id: int = 1) -> None:
    """Recompute every hash from event ``from_id`` on, as anyone can without the key."""
    drop_guards(engine, "audit_event")
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT id, ts, actor, project_id, action, entity, entity_id, payload, row_hash "
                                 "FROM audit_event ORDER BY id")).all()
        prev = audit.GENESIS_HASH
        for eid, ts, actor, pid, action, entity, entity_id, payload, row_hash in rows:
            if eid >= from_id:
                new = audit.event_hash(prev, ts, actor, pid, action, entity, entity_id, payload, row_hash)
                conn.execute(text("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE id = :i"),
                             {"p": prev, "h": new, "i": eid})
                prev = new
            else:
                prev = conn.execute(text("SELECT hash FROM audit_event WHERE id = :i"), {"i": eid}).scalar()


def append_forged(engine: Engine, *, action: str, entity: str, entity_id: str, project_id: int | None,
                  payload: str = "{}", row_hash: str | None = None) -> int:
    """Append an event linked exactly as ``audit.record`` links one (no key, no anchor, no checkpoint)."""
    with engine.begin() as conn:
        prev = conn.execute(text("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")).scalar()
        ts = "2026-12-01T00:00:00.000000+00:00"
        digest = audit.event_hash(prev, ts, "sam", project_id, action, entity, entity_id, payload, row_hash)
        conn.execute(text("INSERT INTO audit_event (ts, actor, project_id, action, entity, entity_id, payload, "
                          "prev_hash, hash, row_hash) VALUES (:ts, 'sam', :pid, :a, :e, :eid, :p, :prev, :h, :r)"),
                     {"ts": ts, "pid": project_id, "a": action, "e": entity, "eid": entity_id, "p": payload,
                      "prev": prev, "h": digest, "r": row_hash})
        return conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
