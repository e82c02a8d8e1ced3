"""Rows the audit chain vouches for: each recorded row's content hash, carried by the event that wrote it.

Every audit event about a tracked row carries the SHA-256 of that row as stored after the change (see
``core.store.audit.record``). Governance readers (sign-offs, decisions, gates, ...) take only vouched rows,
so a row INSERTed or edited with raw SQL is ignored; ``audit verify`` reports it. A row counts as vouched when
its latest event:

- with ``STILLROOM_AUDIT_KEY``, carries a valid HMAC, checked first: nothing is legacy under a key;
- carries the row's current content hash, or lies at or before the legacy boundary (written before row hashes
  existed: LEGACY vouches for the row's existence only). The boundary is the event migration 0005 anchored; a
  'migration' anchor INSERTed later can only lower it, and the checkpoint lines' recorded boundary lowers it too;
- is covered by a line of the checkpoint file, or lies after the newest event any line names (the pending tail:
  a commit whose line is being written). An event covered by no line although later ones are was appended
  outside Stillroom (UNCOVERED);
- for a gate lock, sign-off or decision, has its anchor: the row of ``audit_anchor`` naming that event, its
  hash, its entity and id (UNANCHORED otherwise).

The checkpoint file is consulted through ``audit.file_coverage``: one ``stat`` per call and only the lines
appended since the process last read it, so a page view costs no file read once the process is warm. Two
processes committing at the same moment can leave, for an instant, the first one's events uncovered before its
line is written while the second's line already is; a reader in that instant does not vouch for them, the next
read does. Without a file (an in-memory database, or none written yet) coverage is not checked.

What readers cannot see without a key: a forger who writes rows, events with their true hashes and anchors, as
long as no genuine commit has followed (they are the pending tail); ``audit verify`` reports that tail.
"""

from __future__ import annotations

import hmac
import json
import marshal
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel

from core.domain.errors import GateTampered, RecordTampered
from core.domain.hashing import canonical_json, sha256_hex
from core.store.artifacts import artifact_store
from core.store.audit import (
    ANCHORED_ACTIONS,
    Coverage,
    agreed_boundary,
    audit_key,
    checkpoint_path,
    event_hash,
    event_mac,
    file_coverage,
)
from core.store.models import AuditEvent, GateVersion, id_of, project_of, table_of
from core.store.rowhash import DELETED, TRACKED, Tracked, digests_where, row_digest, select_of

R = TypeVar("R", bound=SQLModel)

LEGACY = "legacy"  # written before row hashes existed: vouches for the row's existence only
UNHASHED = "unhashed"  # an event about a tracked row, written since row hashes exist, that carries none
BAD_MAC = "bad-mac"
UNCOVERED = "uncovered"  # covered by no checkpoint line although later events are: not written by Stillroom
UNANCHORED = "unanchored"  # a gate lock, sign-off or decision whose anchor is missing or names something else


# --------------------------------------------------------------------------- what the events say


_EVENT_COLUMNS = ("id", "entity_id", "row_hash", "prev_hash", "ts", "actor", "project_id", "action", "entity",
                  "payload", "hash", "mac")


@dataclass(frozen=True)
class _Trust:
    """What an event must agree with to vouch for its row: the key, the legacy boundary, the anchors of the
    entity's anchored action, and the checkpoint file's coverage."""

    key: bytes | None
    boundary: int
    anchors: frozenset[tuple[int, str, str, str]]  # (event id, head hash, entity, entity id)
    coverage: Coverage | None

    @classmethod
    def now(cls, conn: Connection, entity: str) -> _Trust:
        coverage = file_coverage(checkpoint_path(conn.engine))
        stated = conn.exec_driver_sql("SELECT min(event_id) FROM audit_anchor WHERE entity = 'migration'").scalar()
        boundary = agreed_boundary(stated or 0, coverage)
        anchors: frozenset[tuple[int, str, str, str]] = frozenset()
        if entity in ANCHORED_ACTIONS.values():
            anchors = frozenset(tuple(r) for r in conn.execute(
                text("SELECT event_id, head_hash, entity, entity_id FROM audit_anchor WHERE entity = :e"),
                {"e": entity}))
        return cls(audit_key(), boundary, anchors, coverage)

    def judge(self, ev: tuple[Any, ...]) -> str:
        """The row hash the event vouches for, or why it vouches for none (LEGACY vouches for any content)."""
        eid, entity_id, row_hash, prev, ts, actor, pid, action, entity, payload, stored, mac = ev
        if self.key is not None and not _keyed(self.key, stored, mac, (prev, ts, actor, pid, action, entity,
                                                                      entity_id, payload, row_hash)):
            return BAD_MAC  # with a key nothing is legacy: the HMAC is checked first
        if eid <= self.boundary:
            return LEGACY if row_hash is None else row_hash
        if row_hash is None:
            return UNHASHED
        cov = self.coverage
        if cov is not None and eid <= cov.newest and not cov.covers(eid):
            return UNCOVERED
        if action in ANCHORED_ACTIONS and (eid, stored, ANCHORED_ACTIONS[action], entity_id) not in self.anchors:
            return UNANCHORED
        return str(row_hash)


def _expected(conn: Connection, spec: Tracked, *, project_ids: list[int] | None = None) -> dict[str, tuple[int, str]]:
    """Per row id, the latest event about it and the row hash it vouches for (or a marker saying why none)."""
    t = table_of(AuditEvent)
    stmt = select(*(t.c[c] for c in _EVENT_COLUMNS)).where(t.c.entity == spec.entity).order_by(t.c.id)
    if project_ids is not None:
        stmt = stmt.where(t.c.project_id.in_(project_ids))
    latest = {ev[1]: ev for ev in conn.execute(stmt)}
    trust = _Trust.now(conn, spec.entity)  # after the events: a line written meanwhile only helps
    return {entity_id: (ev[0], trust.judge(tuple(ev))) for entity_id, ev in latest.items()}


def _keyed(key: bytes, stored: str, mac: str | None, fields: tuple[Any, ...]) -> bool:
    return (mac is not None and event_hash(*fields) == stored
            and hmac.compare_digest(mac, event_mac(key, stored)))


def vouched_ids(session: Session, entity: str, *, project_ids: list[int] | None = None) -> set[int]:
    """Ids of the rows of ``entity`` whose content still matches the latest audit event about them, an event
    Stillroom wrote (see the module docstring for what that takes).

    Four queries at most (the rows, their events, the boundary, the anchors) and a stat of the checkpoint file
    per call, whatever the number of rows.
    """
    spec = TRACKED[entity]
    conn = session.connection()
    scoped = project_ids is not None and "project_id" in table_of(spec.model).c
    rows = digests_where(conn, spec, where="WHERE project_id IN :ids" if scoped else "",
                         params={"ids": list(project_ids or ())} if scoped else None)
    expected = _expected(conn, spec, project_ids=project_ids if scoped else None)
    return {int(i) for i, d in rows.items() if expected.get(i, (0, ""))[1] in (d, LEGACY)}


def only_vouched(session: Session, entity: str, rows: list[R], *, project_ids: list[int] | None = None) -> list[R]:
    """``rows`` (ORM objects of ``entity``) without those the chain does not vouch for."""
    if not rows:
        return rows
    if project_ids is None and hasattr(rows[0], "project_id"):
        project_ids = sorted({p for r in rows if (p := project_of(r)) is not None})
    ok = vouched_ids(session, entity, project_ids=project_ids)
    return [r for r in rows if id_of(r) in ok]


def require_vouched(session: Session, entity: str, row: SQLModel) -> None:
    """Raise RecordTampered unless the chain vouches for ``row`` as it is now."""
    pid = project_of(row)
    if id_of(row) not in vouched_ids(session, entity, project_ids=[pid] if pid is not None else None):
        raise RecordTampered(
            f"{TRACKED[entity].table} #{id_of(row)} does not match the audit event that recorded it: it was inserted "
            "or edited outside Stillroom. Run `stillroom audit verify` and restore the database from backup."
        )


def require_gate_intact(session: Session, gate: GateVersion) -> GateVersion:
    """Raise GateTampered unless the gate's content still hashes to its lock-time hash and its lock event."""
    if gate is None:
        return gate
    vouched = gate.id in vouched_ids(session, "gate", project_ids=[gate.project_id])
    if not (verify_gate(gate) and vouched):
        raise GateTampered(
            f"Gate version {gate.version} of project #{gate.project_id} was changed after it was locked: its "
            "content no longer matches its lock-time hash and audit event. Nothing is scored, decided or rolled "
            "out against it; restore the database from backup and run `stillroom audit verify`."
        )
    return gate


# --------------------------------------------------------------------------- verify's checks


Digests = dict[str, dict[str, str]]  # entity -> row id (as events name it) -> content hash, every row of its table


def row_digests(engine: Engine, *, where: Callable[[Tracked], str] | None = None) -> Digests:
    """Every tracked table's rows (``where`` narrows each table's SELECT) with their content hashes, in id order,
    read as plain driver tuples: every row of every tracked table is hashed here."""
    quote = engine.dialect.identifier_preparer.quote
    out: Digests = {}
    with scan_cursor(engine) as cur:
        for spec in TRACKED.values():
            prefix, select_ = select_of(spec, quote)
            cur.execute(f"{select_}{where(spec) if where is not None else ''} ORDER BY {quote('id')}")
            out[spec.entity] = {str(r[0]): row_digest(prefix, r) for r in cur.fetchall()}
    return out


_MAPPED = 1 << 30  # bytes of a SQLite file mapped for a scan (SQLite maps no more than the file holds)


@contextmanager
def scan_cursor(engine: Engine) -> Iterator[Any]:
    """A plain driver cursor for a pass over whole tables (verify's). On SQLite the file is memory-mapped
    meanwhile, which spares a copy of every page read (5-15 % of reading 100,000 events), then set back."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        mapped = engine.dialect.name == "sqlite"
        if mapped:
            cur.execute("PRAGMA mmap_size")
            before = int((cur.fetchone() or (0,))[0])
            cur.execute(f"PRAGMA mmap_size={_MAPPED}")
        try:
            yield cur
        finally:
            if mapped:
                cur.execute(f"PRAGMA mmap_size={before}")
            cur.close()
    finally:
        raw.close()


def tracked_rows(engine: Engine) -> int:
    """About how many rows ``row_digests`` hashes (each tracked table's highest id; one query), to share verify's
    work between two processes."""
    quote = engine.dialect.identifier_preparer.quote
    tops = " + ".join(f"coalesce((SELECT max(id) FROM {quote(spec.table)}), 0)" for spec in TRACKED.values())
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT {tops}").scalar() or 0)


def beside(engine: Engine, job: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``job`` in a forked process, on the second core while the caller works; returns the call that waits
    for its result (marshal-able data) and that must be made: it reaps the child. When the child fails, that call
    runs ``job`` here instead; call it only where ``can_fork``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connections (never one of the parent's), the result down the pipe, no exit hooks
        code = 1
        try:
            os.close(r)
            engine.dispose(close=False)
            with os.fdopen(w, "wb") as out:
                out.write(marshal.dumps(job()))
            code = 0
        finally:
            os._exit(code)
    os.close(w)

    def wait() -> Any:
        with os.fdopen(r, "rb") as got:
            data = got.read()
        _, status = os.waitpid(pid, 0)
        return marshal.loads(data) if status == 0 and data else job()

    return wait


def can_fork(engine: Engine) -> bool:
    """Whether ``beside`` is safe and worth it: two cores, one thread (a fork copies no other thread's locks), and a
    SQLite file (the child opens its own connection to it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return (hasattr(os, "fork") and cores > 1 and threading.active_count() == 1 and engine.dialect.name == "sqlite"
            and engine.url.database not in (None, "", ":memory:"))


def record_problems(engine: Engine, *, latest: dict[str, dict[str, tuple[int, str | None]]], bad_mac: set[int],
                    boundary: int, digests: Digests | None = None, above: dict[str, int] | None = None,
                    highest: dict[str, int] | None = None) -> list[str]:
    """Every tracked row that differs from the latest event about it, has none, or is gone.

    ``latest`` maps entity, then entity id, to the newest event's id and row hash, as ``verification.verify``'s walk
    of the chain collected them; ``bad_mac`` holds the events whose HMAC failed; ``digests`` the rows, when they were
    read already (beside the walk). With ``above`` (entity -> the table's highest id when a full verify
    passed; ``verify --since``), only the rows ``latest`` names and those added since are read: ``latest`` then
    holds the events since that verify. ``highest``, when given, receives each entity's highest row id.
    """
    if digests is None:
        digests = row_digests(engine, where=None if above is None else lambda spec: _since_where(
            spec, latest.get(spec.entity, {}), above))
    out: list[str] = []
    for spec in TRACKED.values():
        rows = digests.get(spec.entity, {})
        out += _compare(spec, rows, latest.get(spec.entity, {}), bad_mac=bad_mac, boundary=boundary)
        if highest is not None:
            highest[spec.entity] = int(next(reversed(rows), 0))  # in id order: the last is the highest
    return out


def _since_where(spec: Tracked, expected: dict[str, tuple[int, str | None]], above: dict[str, int]) -> str:
    """The rows added since a full verify, and those the events since name."""
    touched = ",".join(str(int(i)) for i in expected if i.isdigit())
    return f" WHERE id > {int(above.get(spec.entity, 0))}" + (f" OR id IN ({touched})" if touched else "")


def _compare(spec: Tracked, rows: dict[str, str], expected: dict[str, tuple[int, str | None]], *,
             bad_mac: set[int], boundary: int) -> list[str]:
    """One pass over the table's rows (id -> content hash) against the events that vouch for them."""
    if not bad_mac and len(rows) == len(expected) and _all_carried(rows, expected):
        return []  # the usual table: every row, and only those, named by an event carrying its hash
    wrong: list[tuple[int, str, int, str | None]] = []  # (row id, its id as events name it, event, want)
    present = 0
    for rid, digest in rows.items():
        got = expected.get(rid)
        if got is None:
            wrong.append((int(rid), rid, 0, None))
            continue
        present += 1
        want = got[1]
        if want is None or got[0] in bad_mac:  # the usual event carries the row's hash and a good HMAC
            want = _want(got, bad_mac, boundary)
        if want != LEGACY and want != digest:
            wrong.append((int(rid), rid, got[0], want))
    out = [_row_problem(f"{spec.table} #{rid}", eid, want) for _, rid, eid, want in sorted(wrong)]
    if present < len(expected):  # some event names a row the table no longer has
        for rid, got in expected.items():
            if rid not in rows and _want(got, bad_mac, boundary) not in _NOT_ROWS and rid.isdigit():
                out.append(f"{spec.table} #{rid}, recorded by event #{got[0]}, is gone: it was deleted outside "
                           "Stillroom.")
    return out


_HASH_OF = itemgetter(1)


def _all_carried(rows: dict[str, str], expected: dict[str, tuple[int, str | None]]) -> bool:
    """Whether each event-named row is there with the hash its latest event carries (compared in C, no loop here:
    verify's usual case, every row of a big table intact)."""
    return list(map(rows.get, expected, repeat(""))) == list(map(_HASH_OF, expected.values()))


def _want(event: tuple[int, str | None], bad_mac: set[int], boundary: int) -> str:
    """The row hash an event vouches for, or the marker saying why it vouches for none."""
    eid, row_hash = event
    if eid in bad_mac:
        return BAD_MAC
    if row_hash is None:
        return LEGACY if eid <= boundary else UNHASHED
    return row_hash


_NOT_ROWS = (DELETED, LEGACY, UNHASHED, BAD_MAC)  # events that vouch for no row's presence


def _row_problem(what: str, eid: int, want: str | None) -> str:
    if want is None:
        return f"{what} has no audit event: it was inserted outside Stillroom."
    if want == BAD_MAC:
        return f"{what}: the event that recorded it (#{eid}) fails its HMAC."
    if want == UNHASHED:
        return f"{what}: the event that recorded it (#{eid}) carries no row hash: it was not written by Stillroom."
    if want == DELETED:
        return f"{what} was removed by event #{eid} but is back: it was re-inserted outside Stillroom."
    return f"{what} differs from what event #{eid} recorded: it was edited outside Stillroom."


def artifact_problems(engine: Engine) -> list[str]:
    """Every artifact file that is missing or whose SHA-256 changed since it was recorded."""
    store = artifact_store()  # the data directory, or the fsspec store a team mounts (issue 20)
    out = []
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, kind, path, sha256 FROM artifact ORDER BY id").all()
    for aid, kind, rel, sha in rows:
        if not store.exists(rel):
            out.append(f"artifact #{aid} ({kind}) is missing at {rel}: restore it from backup.")
        elif store.sha256(rel) != sha:
            out.append(f"artifact #{aid} ({kind}) at {rel} no longer has its recorded SHA-256: it was changed.")
    return out


# --------------------------------------------------------------------------- the gate's content hash


def spec_hash(*, project_id: int, version: int, spec_json: str, reason: str, supersedes: str | None) -> str:
    return sha256_hex(canonical_json({
        "project_id": project_id, "version": version, "spec": json.loads(spec_json),
        "reason": reason, "supersedes": supersedes,
    }))


def verify_gate(gate: GateVersion) -> bool:
    """True when the stored content still matches the hash taken at lock time."""
    return spec_hash(
        project_id=gate.project_id, version=gate.version, spec_json=gate.spec_json,
        reason=gate.reason, supersedes=gate.supersedes_hash,
    ) == gate.content_hash
