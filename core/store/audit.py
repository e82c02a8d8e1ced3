"""The audit log: an append-only hash chain of every state change, and what anchors it.

Each event's hash covers the previous event's hash, the event's own fields and, for a recorded row, the
SHA-256 of that row's content (``core.store.integrity``). ``verify`` walks the chain and checks it
against anchors the chain alone cannot forge: the head hash stored (append-only) when a gate is locked,
a sign-off or a decision recorded; a checkpoint file outside the database, appended on every commit that
adds events; and, with ``STILLROOM_AUDIT_KEY``, an HMAC on every event. It also compares every recorded
row with the event that wrote it, and every artifact file with its SHA-256.

Since issue 16 each checkpoint line also names the range of events its commit wrote (``first`` to
``event_id``) and the legacy boundary, so the file says which events Stillroom itself wrote: an event after
the boundary that no line covers, followed by events that are covered, was appended outside Stillroom, even
when a genuine commit's checkpoint came after it. Lines written before (no range) cover everything up to the
newest of them. The legacy boundary (events older than row hashes, vouched for by existence only) is the one
migration 0005 anchored: a 'migration' anchor INSERTed later cannot raise it, and verify reports it, as it
reports any anchor that names an event Stillroom does not anchor, or another record than its event's.

What it cannot detect without a key: someone who can write the database and the checkpoint file can
recompute every hash and rewrite the chain, its anchors and its checkpoints consistently. With a key they
cannot forge events, but removing the newest events together with the newest checkpoint lines stays
invisible unless a head exported elsewhere is checked (``expect_head``).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, func, select

from core.domain.hashing import canonical_json, sha256_hex
from core.store import rowhash
from core.store.config import get_settings
from core.store.models import AuditAnchor, AuditEvent, User, id_of

GENESIS_HASH = "0" * 64
_log = logging.getLogger(__name__)
# Events whose head hash is also stored as an append-only anchor row.
ANCHORED_ACTIONS = {"gate.lock": "gate", "review.signoff": "sign_off", "decision.record": "decision"}
# Pending checkpoint of a session's open transaction, written to the checkpoint file when it commits.
_HEAD = "stillroom_audit_head"


def event_hash(
    prev_hash: str,
    ts: str,
    actor: str,
    project_id: int | None,
    action: str,
    entity: str,
    entity_id: str,
    payload: str,
    row_hash: str | None = None,
) -> str:
    pid = "" if project_id is None else str(project_id)
    fields = (prev_hash, ts, actor, pid, action, entity, entity_id, payload)
    # Events without a row hash (and every event written before it existed) hash exactly as they always did.
    # hashlib inline rather than ``sha256_hex``: verify calls this once per event, 100,000 times a run.
    return hashlib.sha256("\x1f".join(fields if row_hash is None else (*fields, row_hash)).encode()).hexdigest()


def audit_key() -> bytes | None:
    """The chain's HMAC key, from STILLROOM_AUDIT_KEY (environment or Streamlit secrets); never in the database."""
    key = get_settings().audit_key
    return key.get_secret_value().encode("utf-8") if key else None


def event_mac(key: bytes, hash_: str) -> str:
    return hmac.new(key, hash_.encode("ascii"), hashlib.sha256).hexdigest()


def event_macs(key: bytes) -> Callable[[str], str]:
    """``event_mac`` under one key, its padded key hashed once (RFC 2104): verify computes one per event, and this
    costs half of ``hmac.new`` (whose OpenSSL set-up per call dominates for a 64-character message)."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(hash_: str) -> str:
        i = inner.copy()
        i.update(hash_.encode("ascii"))
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return mac


def head_hash(session: Session) -> str:
    last = session.exec(select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return last or GENESIS_HASH


# Issue 20: the key of the PostgreSQL advisory lock that lets one transaction at a time append to the chain.
_APPEND_LOCK = 0x57111200


def _one_appender(session: Session) -> None:
    """Hold the chain's append lock until this transaction ends (PostgreSQL). Two transactions that read the same
    head would both link to it, and one would fail on the unique prev_hash (workers on several hosts finishing
    jobs at once); SQLite serialises writers already (the change was flushed, so this one holds the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})


def record(
    session: Session,
    *,
    actor: User | str,
    action: str,
    entity: str,
    entity_id: Any = "",
    project_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (the caller commits).

    Call it in the same session as the state change it records, after that change, so both commit or
    neither does and the event carries the hash of the row as changed.
    """
    actor_name = actor if isinstance(actor, str) else actor.username
    eid = str(entity_id)
    session.flush()  # the change this event records, so its row reads back as stored
    row_hash = rowhash.row_state(session, entity=entity, entity_id=eid)
    _one_appender(session)
    prev = head_hash(session)
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    body = canonical_json(payload or {})
    digest = event_hash(prev, ts, actor_name, project_id, action, entity, eid, body, row_hash)
    key = audit_key()
    ev = AuditEvent(
        ts=ts, actor=actor_name, project_id=project_id, action=action, entity=entity, entity_id=eid,
        payload=body, prev_hash=prev, hash=digest, row_hash=row_hash, mac=event_mac(key, digest) if key else None,
    )
    session.add(ev)
    # Flushed at once so a second event in the same transaction chains onto it.
    session.flush()
    if action in ANCHORED_ACTIONS:
        session.add(AuditAnchor(event_id=id_of(ev), head_hash=ev.hash, entity=ANCHORED_ACTIONS[action], entity_id=eid))
    pending = session.info.get(_HEAD)
    if pending is None:  # the transaction's first event: its checkpoint line names the range it writes
        pending = {"first": ev.id, "count": _count_events(session) - 1, "legacy": _migration_event(session)}
    session.info[_HEAD] = {**pending, "event_id": ev.id, "head_hash": ev.hash, "count": pending["count"] + 1}
    return ev


def _count_events(session: Session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()


def _migration_event(session: Session) -> int:
    """The legacy boundary as the database states it now (see ``legacy_boundary``)."""
    got = session.exec(select(func.min(AuditAnchor.event_id)).where(AuditAnchor.entity == "migration")).one()
    return got or 0


# --------------------------------------------------------------------------- the checkpoint file


def checkpoint_path(engine: Engine) -> Path | None:
    """The checkpoint file of this database: beside a SQLite file, else under the data directory."""
    settings = get_settings()
    if settings.audit_checkpoint_file:
        return Path(settings.audit_checkpoint_file)
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        db_file = Path(url.database).resolve()
        return db_file.with_name(db_file.stem + ".audit-checkpoints.jsonl")
    tag = sha256_hex(url.render_as_string(hide_password=True))[:12]
    return Path(settings.data_dir).resolve() / f"audit-checkpoints-{tag}.jsonl"


def append_checkpoint(path: Path, head: dict[str, Any]) -> None:
    """One JSON line per commit that added events; the file is append-only by convention.

    ``head`` names the commit's newest event (``event_id``, ``head_hash``, ``count`` of events up to it) and, since
    issue 16, the ``first`` event the commit wrote and the ``legacy`` boundary it saw.
    """
    line = canonical_json({"ts": datetime.now(UTC).isoformat(timespec="microseconds"), **head}) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def parse_checkpoint(line: str, n: int) -> dict[str, Any]:
    """One line as a checkpoint; ValueError, KeyError or TypeError when it is none."""
    cp = json.loads(line)
    out: dict[str, Any] = {"line": n, "event_id": int(cp["event_id"]), "head_hash": str(cp["head_hash"]),
                           "count": int(cp["count"]), "ts": str(cp.get("ts", "")), "first": None, "legacy": None}
    if "first" in cp:  # written since issue 16: the range of events this commit wrote
        out["first"] = int(cp["first"])
        if not 0 < out["first"] <= out["event_id"]:
            raise ValueError("the range of events is empty")
    if "legacy" in cp:
        out["legacy"] = int(cp["legacy"])
    return out


def read_checkpoints(path: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The file's checkpoints, and a problem for each line that is not one."""
    if path is None or not path.exists():
        return [], []
    out, bad = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append(parse_checkpoint(line, n))
        except (ValueError, KeyError, TypeError):
            bad.append(f"line {n} of the checkpoint file {path} is not a checkpoint: the file was edited.")
    return out, bad


@dataclass
class Coverage:
    """Which events the checkpoint file says Stillroom itself wrote.

    Each line written since issue 16 names the range of events its commit wrote (``first`` to ``event_id``);
    concurrent writers may append their lines in any order, so the ranges are merged, not read in order. A line
    written before (without ``first``) says only that the chain reached its event: it covers every event up to
    the newest such line (lenient, so a database made before issue 16 keeps verifying). Events after the newest
    event any line names are the pending tail: committed by a process that has not written its line yet, or that
    stopped before it did.
    """

    starts: list[int] = field(default_factory=list)  # merged ranges, sorted and disjoint
    ends: list[int] = field(default_factory=list)
    lenient_to: int = 0  # the newest event named by a line without a range
    newest: int = 0  # the newest event any line names
    legacy: int | None = None  # the lowest legacy boundary a line recorded

    @classmethod
    def of(cls, checkpoints: list[dict[str, Any]]) -> Coverage:
        out = cls()
        for cp in checkpoints:
            out.add(cp["first"], cp["event_id"], cp["legacy"])
        return out

    def add(self, first: int | None, last: int, legacy: int | None) -> None:
        """One line: the range ``first``-``last`` its commit wrote (``first`` None on a line without one)."""
        self.newest = max(self.newest, last)
        if legacy is not None:
            self.legacy = legacy if self.legacy is None else min(self.legacy, legacy)
        if first is None:
            self.lenient_to = max(self.lenient_to, last)
        elif self.starts and first == self.ends[-1] + 1:  # the usual line: the commit after the previous one
            self.ends[-1] = last
        elif not self.starts or first > self.ends[-1]:
            self.starts.append(first)
            self.ends.append(last)
        else:  # a line out of order (concurrent writers): merge every range it touches
            i = j = bisect.bisect_left(self.starts, first)
            if i > 0 and self.ends[i - 1] >= first - 1:
                i -= 1
            while j < len(self.starts) and self.starts[j] <= last + 1:
                j += 1
            if i < j:
                first, last = min(first, self.starts[i]), max(last, self.ends[j - 1])
            self.starts[i:j], self.ends[i:j] = [first], [last]

    def covered_to(self, event_id: int) -> int | None:
        """The last event of the covered stretch holding ``event_id`` (None when no line covers it), so a walk in
        id order asks again only after that event."""
        if event_id <= self.lenient_to:
            return self.lenient_to
        i = bisect.bisect_right(self.starts, event_id) - 1
        return self.ends[i] if i >= 0 and event_id <= self.ends[i] else None

    def covers(self, event_id: int) -> bool:
        """Whether a line vouches that Stillroom wrote the event (the pending tail is not covered)."""
        if event_id <= self.lenient_to:
            return True
        i = bisect.bisect_right(self.starts, event_id) - 1
        return i >= 0 and event_id <= self.ends[i]


_file_lock = threading.Lock()
# A line as ``append_checkpoint`` writes it (canonical JSON, keys sorted); any other line is parsed as JSON.
_CANONICAL_LINE = re.compile(rb'^\{"count":\d+,"event_id":(\d+),"first":(\d+),"head_hash":"[0-9a-f]{64}",'
                             rb'"legacy":(\d+),"ts":"[^"]*"\}$')
_file_cache: dict[Path, tuple[int, int, Coverage]] = {}  # path -> (inode, bytes read, coverage)


def file_coverage(path: Path | None) -> Coverage | None:
    """The checkpoint file's coverage, read incrementally: a stat per call, and only the lines appended since.

    For the readers, which run on every page view; lines that do not parse are skipped (``verify`` names them).
    None when the database has no checkpoint file (an in-memory database, or none written yet).
    """
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    with _file_lock:
        inode, done, cov = _file_cache.get(path, (st.st_ino, 0, Coverage()))
        if st.st_size != done:
            new = _appended(path, done, st.st_size) if inode == st.st_ino else None
            if new is None:  # replaced, cut or rewritten: read it again from the start
                cov, new = Coverage(), _appended(path, 0, st.st_size) or b""
                done = 0
            _cover_lines(cov, new)
            done += len(new)
        _file_cache[path] = (st.st_ino, done, cov)
        # A copy: the cached one grows under the lock while the caller reads this one without it.
        return Coverage(list(cov.starts), list(cov.ends), cov.lenient_to, cov.newest, cov.legacy)


def _appended(path: Path, done: int, size: int) -> bytes | None:
    """The whole lines after byte ``done`` (a line still being written waits for the next call); None when the
    file no longer continues what was read (shorter, or no line ends at ``done``)."""
    if size < done:
        return None
    with path.open("rb") as f:
        f.seek(max(done - 1, 0))
        chunk = f.read(size - done + (done > 0))
    if done > 0:
        if chunk[:1] != b"\n":
            return None
        chunk = chunk[1:]
    return chunk[: chunk.rfind(b"\n") + 1]


def _cover_lines(cov: Coverage, lines: bytes) -> None:
    for line in lines.splitlines():
        if m := _CANONICAL_LINE.search(line):  # the lines Stillroom writes, without a JSON parse
            cov.add(int(m[2]), int(m[1]), int(m[3]))
            continue
        try:
            cp = parse_checkpoint(line.decode("utf-8", errors="replace"), 0)
        except (ValueError, KeyError, TypeError):
            continue
        cov.add(cp["first"], cp["event_id"], cp["legacy"])


def export_checkpoints(engine: Engine) -> str:
    """The checkpoint file's content, for keeping a copy where the database's users cannot write."""
    path = checkpoint_path(engine)
    return path.read_text(encoding="utf-8") if path and path.exists() else ""


# Lines a failed write left behind: written before the next one, so a full disk for one commit leaves no hole.
_write_lock = threading.Lock()
_unwritten: dict[Path, list[dict[str, Any]]] = {}


@sa_event.listens_for(Session, "after_commit")
def _write_checkpoint(session: Session) -> None:
    head = session.info.pop(_HEAD, None)
    if head is None:
        return
    path = checkpoint_path(session.get_bind().engine)
    if path is None:
        return
    with _write_lock:
        waiting = _unwritten.setdefault(path, [])
        waiting.append(head)
        try:
            while waiting:
                append_checkpoint(path, waiting[0])
                waiting.pop(0)
        except OSError as exc:  # the commit stands; the line is retried with this process's next commit
            _log.warning("audit checkpoint not written to %s (%d line(s) wait for the next commit): %s", path,
                         len(waiting), exc)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_checkpoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed: its events never reached the database
        session.info.pop(_HEAD, None)


# --------------------------------------------------------------------------- the legacy boundary


def anchor_rows(engine: Engine) -> list[tuple[int, int, str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT id, event_id, head_hash, entity, entity_id FROM audit_anchor ORDER BY id").all()]


def legacy_boundary(anchors: list[tuple[int, int, str, str, str]]) -> int:
    """The last event written before anchors and row hashes existed (0 for a database made since).

    Migration 0005 fixed it with the first anchor (entity 'migration'); no code writes another. A 'migration'
    anchor INSERTed later can therefore only lower it here (the lowest event any of them names counts), never
    move it over events appended since; ``verify`` reports the extra anchor, and also compares the boundary with
    the one every checkpoint line recorded and with the chain (no event before it carries a row hash).
    """
    return min((a[1] for a in anchors if a[3] == "migration"), default=0)


def agreed_boundary(stated: int, coverage: Coverage | None) -> int:
    """The legacy boundary as low as the database (``stated``) or any checkpoint line puts it."""
    return stated if coverage is None or coverage.legacy is None else min(stated, coverage.legacy)


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
