"""What an attacker with the database file does to the record (issue 9): drop the guards, edit, re-hash."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.store import audit, rowhash
from core.store.models import APPEND_ONLY_TABLES


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


def forge_ship(engine: Engine, *, evaluation, validator_id: int, sponsor_id: int, hashed: bool = False,  # noqa: ANN001
               anchored: bool = False, migration: bool = True) -> dict[str, tuple[int, int]]:
    """The issue-16 forgery, with write access to the database only: INSERT an approving sign-off, a threshold
    proposal and a ship decision for ``evaluation``, then their three events chained with SHA-256 (row hash NULL,
    or the rows' true hashes when ``hashed``); ``anchored`` adds correct anchors for the sign-off and the decision,
    ``migration`` an anchor with entity 'migration' at the last forged event. Returns {entity: (row id, event id)}.
    """

    pid, ehash = evaluation.project_id, evaluation.report_hash
    with engine.begin() as conn:
        ids = {
            "sign_off": conn.execute(text(
                "INSERT INTO sign_off (project_id, evaluation_id, evaluation_hash, approve, comment, validator_id, "
                "created_at, covers_declared_latency) VALUES (:p, :e, :h, 1, '', :v, '2026-12-01 00:00:00', 0) "
                "RETURNING id"), {"p": pid, "e": evaluation.id, "h": ehash, "v": validator_id}).scalar(),
            "threshold_proposal": conn.execute(text(
                "INSERT INTO threshold_proposal (project_id, evaluation_id, threshold, served_share, fallback_rate, "
                "created_by, created_at) VALUES (:p, :e, 0.5, 0.99, 0.01, :v, '2026-12-01 00:00:00') RETURNING id"),
                {"p": pid, "e": evaluation.id, "v": validator_id}).scalar(),
            "decision": conn.execute(text(
                "INSERT INTO decision (project_id, round, decision, rationale, evaluation_id, evaluation_hash, "
                "data_request, created_by, created_at) VALUES (:p, 1, 'ship', 'forged', :e, :h, '{}', :s, "
                "'2026-12-01 00:00:00') RETURNING id"), {"p": pid, "e": evaluation.id, "h": ehash, "s": sponsor_id}
            ).scalar(),
        }
        hashes = {e: rowhash.digests(conn, e)[str(i)] for e, i in ids.items()} if hashed else {}
    actions = {"sign_off": "review.signoff", "threshold_proposal": "review.threshold", "decision": "decision.record"}
    out = {}
    for entity, rid in ids.items():
        eid = append_forged(engine, action=actions[entity], entity=entity, entity_id=str(rid), project_id=pid,
                            row_hash=hashes.get(entity))
        out[entity] = (rid, eid)
        if anchored and entity != "threshold_proposal":
            insert_anchor(engine, event_id=eid, entity=entity, entity_id=str(rid))
    if migration:
        insert_anchor(engine, event_id=out["decision"][1], entity="migration", entity_id="0005")
    return out


def insert_anchor(engine: Engine, *, event_id: int, entity: str, entity_id: str, head_hash: str | None = None,
                  anchor_id: int | None = None) -> int:
    """INSERT an anchor row (no trigger forbids an INSERT) naming ``event_id`` with its true hash by default."""
    with engine.begin() as conn:
        head = head_hash or conn.execute(text("SELECT hash FROM audit_event WHERE id = :i"), {"i": event_id}).scalar()
        return conn.execute(text("INSERT INTO audit_anchor (id, event_id, head_hash, entity, entity_id, created_at) "
                                 "VALUES (:a, :e, :h, :n, :i, '2026-12-01 00:00:00') RETURNING id"),
                            {"a": anchor_id, "e": event_id, "h": head, "n": entity, "i": entity_id}).scalar()


def mac_everything(engine: Engine, key: bytes) -> None:
    """Give every event its HMAC under ``key``: the state of a database written under the key from its first event."""
    from core.store.db import install_guards

    drop_guards(engine, "audit_event")
    with engine.begin() as conn:
        for eid, hash_ in conn.execute(text("SELECT id, hash FROM audit_event")).all():
            conn.execute(text("UPDATE audit_event SET mac = :m WHERE id = :i"),
                         {"m": audit.event_mac(key, hash_), "i": eid})
    install_guards(engine)
