"""The audit log: an append-only hash chain of every state change, and what anchors it.

Each event's hash covers the previous event's hash, the event's own fields and, for a recorded row, the
SHA-256 of that row's content (``core.governance.integrity``). ``verify`` walks the chain and checks it
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from core.models import AuditAnchor, AuditEvent, User

GENESIS_HASH = "0" * 64
_log = logging.getLogger(__name__)
# Events whose head hash is also stored as an append-only anchor row.
ANCHORED_ACTIONS = {"gate.lock": "gate", "review.signoff": "sign_off", "decision.record": "decision"}
# Pending checkpoint of a session's open transaction, written to the checkpoint file when it commits.
_HEAD = "stillroom_audit_head"


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
    row_hash: str | None = None,
) -> str:
    pid = "" if project_id is None else str(project_id)
    fields = (prev_hash, ts, actor, pid, action, entity, entity_id, payload)
    # Events without a row hash (and every event written before it existed) hash exactly as they always did.
    return sha256_hex("\x1f".join(fields if row_hash is None else (*fields, row_hash)))


def audit_key() -> bytes | None:
    """The chain's HMAC key, from STILLROOM_AUDIT_KEY (environment or Streamlit secrets); never in the database."""
    from core.config import get_settings

    key = get_settings().audit_key
    return key.get_secret_value().encode("utf-8") if key else None


def event_mac(key: bytes, hash_: str) -> str:
    return hmac.new(key, hash_.encode("ascii"), hashlib.sha256).hexdigest()


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

    Call it in the same session as the state change it records, after that change, so both commit or
    neither does and the event carries the hash of the row as changed.
    """
    from core.governance import integrity

    actor_name = actor if isinstance(actor, str) else actor.username
    eid = str(entity_id)
    session.flush()  # the change this event records, so its row reads back as stored
    row_hash = integrity.row_state(session, entity=entity, entity_id=eid)
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
        session.add(AuditAnchor(event_id=ev.id, head_hash=ev.hash, entity=ANCHORED_ACTIONS[action], entity_id=eid))
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
    from core.config import get_settings

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


def append_checkpoint(path: Path, head: dict) -> None:
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


def _parse_checkpoint(line: str, n: int) -> dict:
    """One line as a checkpoint; ValueError, KeyError or TypeError when it is none."""
    cp = json.loads(line)
    out = {"line": n, "event_id": int(cp["event_id"]), "head_hash": str(cp["head_hash"]), "count": int(cp["count"]),
           "ts": str(cp.get("ts", "")), "first": None, "legacy": None}
    if "first" in cp:  # written since issue 16: the range of events this commit wrote
        out["first"] = int(cp["first"])
        if not 0 < out["first"] <= out["event_id"]:
            raise ValueError("the range of events is empty")
    if "legacy" in cp:
        out["legacy"] = int(cp["legacy"])
    return out


def read_checkpoints(path: Path | None) -> tuple[list[dict], list[str]]:
    """The file's checkpoints, and a problem for each line that is not one."""
    if path is None or not path.exists():
        return [], []
    out, bad = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append(_parse_checkpoint(line, n))
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
    def of(cls, checkpoints: list[dict]) -> Coverage:
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
            cp = _parse_checkpoint(line.decode("utf-8", errors="replace"), 0)
        except (ValueError, KeyError, TypeError):
            continue
        cov.add(cp["first"], cp["event_id"], cp["legacy"])


def export_checkpoints(engine: Engine) -> str:
    """The checkpoint file's content, for keeping a copy where the database's users cannot write."""
    path = checkpoint_path(engine)
    return path.read_text(encoding="utf-8") if path and path.exists() else ""


# Lines a failed write left behind: written before the next one, so a full disk for one commit leaves no hole.
_write_lock = threading.Lock()
_unwritten: dict[Path, list[dict]] = {}


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
def _forget_checkpoint(session: Session, transaction) -> None:  # noqa: ANN001
    if transaction.parent is None:  # rolled back or closed: its events never reached the database
        session.info.pop(_HEAD, None)


# --------------------------------------------------------------------------- verification


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


@dataclass
class _Walk:
    """What one pass over the chain learns besides its links: where the named events and hashes sit."""

    wanted_ids: set[int]
    wanted_hash: str | None
    key: bytes | None
    track: bool = False  # collect each entity's newest event and row hash (for the record check)
    boundary: int = 0  # the legacy boundary: events up to it predate row hashes, anchors and checkpoints
    stated_boundary: int = 0  # the boundary as the 'migration' anchor states it (the one an attacker moves)
    coverage: Coverage | None = None  # the checkpoint file's, when it has lines
    latest: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    # event id -> (position, hash, action, entity, entity id)
    found: dict[int, tuple[int, str, str, str, str]] = field(default_factory=dict)
    hash_position: int | None = None
    anchored: list[tuple[int, str]] = field(default_factory=list)  # (event id, action) of anchored actions
    unkeyed: list[int] = field(default_factory=list)
    bad_mac: list[int] = field(default_factory=list)
    uncovered: list[int] = field(default_factory=list)  # events after the boundary that no checkpoint line covers
    hashed_legacy: int | None = None  # the first event at or before the boundary carrying a row hash or HMAC
    last_id: int = 0

    def see(self, position: int, eid: int, action: str, entity: str, entity_id: str, stored: str,
            row_hash: str | None, mac: str | None) -> None:
        """Note what the checks after the walk need about one linked event."""
        if eid in self.wanted_ids:
            self.found[eid] = (position, stored, action, entity, entity_id)
        if stored == self.wanted_hash:
            self.hash_position = position
        if action in ANCHORED_ACTIONS:
            self.anchored.append((eid, action))
        if self.track:
            self.latest[(entity, entity_id)] = (eid, row_hash)
        if self.key is not None:
            if mac is None:
                self.unkeyed.append(eid)
            elif not hmac.compare_digest(mac, event_mac(self.key, stored)):
                self.bad_mac.append(eid)
        if eid <= self.stated_boundary and self.hashed_legacy is None and (row_hash is not None or mac is not None):
            self.hashed_legacy = eid
        if eid > self.boundary and self.coverage is not None and not self.coverage.covers(eid):
            self.uncovered.append(eid)


def _walk(engine: Engine, walk: _Walk) -> ChainReport:
    prev = GENESIS_HASH
    prev_id: int | None = None
    checked = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "SELECT id, ts, actor, project_id, action, entity, entity_id, payload, prev_hash, hash, row_hash, mac "
            "FROM audit_event ORDER BY id"
        )
        while rows := cur.fetchmany(10_000):
            for eid, ts, actor, pid, action, entity, entity_id, payload, prev_hash, stored, row_hash, mac in rows:
                if prev_hash != prev:
                    after = f"event #{prev_id}" if prev_id is not None else "the start of the chain"
                    return ChainReport(
                        False, checked, prev, eid,
                        f"it does not follow {after}: an event was deleted, inserted or reordered there.",
                    )
                if event_hash(prev_hash, ts, actor, pid, action, entity, entity_id, payload, row_hash) != stored:
                    return ChainReport(
                        False, checked, prev, eid,
                        "its content no longer matches its hash: the row was edited outside Stillroom.",
                    )
                checked += 1
                walk.see(checked, eid, action, entity, entity_id, stored, row_hash, mac)
                prev, prev_id = stored, eid
        cur.close()
    finally:
        raw.close()
    walk.last_id = prev_id or 0
    return ChainReport(True, checked, prev)


def verify_chain(engine: Engine) -> ChainReport:
    """Walk the whole chain in id order and report the first broken link (the links only)."""
    return _walk(engine, _Walk(set(), None, None))


@dataclass(frozen=True)
class AuditReport:
    """What ``verify`` found: the chain's links, then every anchor, checkpoint, key, record and file check."""

    chain: ChainReport
    problems: list[str]
    limits: list[str]
    expect_head: str | None = None
    following: int | None = None  # events after the expected head, when it was found
    checkpoint_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    @property
    def checked(self) -> int:
        return self.chain.checked

    @property
    def head_hash(self) -> str:
        return self.chain.head_hash

    @property
    def broken_at(self) -> int | None:
        return self.chain.broken_at

    @property
    def problem(self) -> str:
        return self.chain.problem if not self.chain.ok else (self.problems[0] if self.problems else "")

    def sentence(self) -> str:
        if not self.chain.ok:
            return self.chain.sentence()
        if self.problems:
            more = f" ({len(self.problems) - 1} more problem(s) listed below)" if len(self.problems) > 1 else ""
            return f"Audit record does not verify: {self.problems[0]}{more}"
        head = ""
        if self.expect_head is not None:
            head = f" The expected head {self.expect_head[:16]} is in the chain; {self.following} event(s) follow it."
        return (f"Audit chain intact: {self.chain.checked} events verified, head {self.chain.head_hash[:16]}; "
                f"anchors, checkpoints, records and artifact files agree with it.{head}")

    def lines(self) -> list[str]:
        """The sentence, every further problem, then what this check cannot detect."""
        out = [self.sentence()]
        out += [f"- {p}" for p in self.problems[1:]]
        out += [f"Cannot detect: {limit}" for limit in self.limits]
        return out


def verify(engine: Engine, *, expect_head: str | None = None, files: bool = True) -> AuditReport:
    """Check the chain's links, its anchors, the checkpoint file, the HMACs (with a key), every recorded row
    against its event and (``files``) every artifact's SHA-256; ``expect_head`` must be a hash in the chain."""
    from core.governance import integrity

    key = audit_key()
    path = checkpoint_path(engine)
    checkpoints, problems = read_checkpoints(path)
    anchors = _anchors(engine)
    expect = _expected_head(expect_head)
    coverage = Coverage.of(checkpoints) if checkpoints else None
    stated = legacy_boundary(anchors)
    boundary = agreed_boundary(stated, coverage)
    wanted = {a[1] for a in anchors} | {c["event_id"] for c in checkpoints} | {c["first"] for c in checkpoints}
    walk = _Walk(wanted - {None}, expect, key, track=True, boundary=boundary, stated_boundary=stated,
                 coverage=coverage)
    chain = _walk(engine, walk)
    if not chain.ok:
        return AuditReport(chain, [], limits(key), expect, checkpoint_file=str(path) if path else None)
    following = None
    if expect is not None:
        if walk.hash_position is None:
            problems.append(f"the expected head {expect[:16]} is not in the chain: the chain was rewritten or "
                            "truncated before it, or the hash belongs to another database.")
        else:
            following = chain.checked - walk.hash_position
    problems += _anchor_problems(anchors, walk)
    problems += _boundary_problems(anchors, coverage, walk)
    problems += _checkpoint_problems(path, checkpoints, chain, walk)
    problems += _key_problems(walk)
    problems += integrity.record_problems(engine, latest=walk.latest, bad_mac=set(walk.bad_mac), boundary=boundary)
    if files:
        problems += integrity.artifact_problems(engine)
    return AuditReport(chain, problems, limits(key), expect, following, str(path) if path else None)


def _expected_head(expect_head: str | None) -> str | None:
    expect = (expect_head or "").strip().lower() or None
    if expect is not None and not re.fullmatch(r"[0-9a-f]{64}", expect):
        from core.errors import InvalidInput

        raise InvalidInput(f"the expected head {expect_head!r} is not a 64-character hex hash: give the full head "
                           "hash as a decision record or an exported checkpoint quotes it.", field="expect_head")
    return expect


def limits(key: bytes | None) -> list[str]:
    """What ``verify`` cannot detect, in the configuration it ran under."""
    truncation = ("the newest events deleted together with their anchors and the newest lines of the checkpoint "
                  "file; keep exported checkpoints where the database's users cannot write, and check a head "
                  "from them with --expect-head.")
    if key is None:
        return ["without STILLROOM_AUDIT_KEY, a rewrite by someone who can recompute the hashes and also rewrite "
                "the checkpoint file: events, rows, anchors and checkpoints rewritten consistently verify.",
                truncation]
    return [truncation]


def _anchors(engine: Engine) -> list[tuple[int, int, str, str, str]]:
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


def _anchor_problems(anchors: list[tuple[int, int, str, str, str]], walk: _Walk) -> list[str]:
    """Anchors naming a deleted, rewritten or unanchored event, repeated ones, and anchored events without one."""
    out, first_for = [], {}
    for aid, event_id, head, entity, entity_id in anchors:
        what = f"anchor #{aid} ({entity} {entity_id}, at event #{event_id})"
        got = walk.found.get(event_id)
        if event_id == 0:
            if entity != "migration" or head != GENESIS_HASH:
                out.append(f"{what} names no event: it was inserted outside Stillroom.")
        elif got is None:
            out.append(f"{what} names an event the chain no longer has: events were deleted.")
        elif got[1] != head:
            out.append(f"{what} disagrees with the chain: it was rewritten at or before event #{event_id}.")
        elif entity != "migration" and not _anchors_its_event(entity, entity_id, got):
            out.append(f"{what} names a {got[2]} event about {got[3]} {got[4]}, which Stillroom does not anchor so: "
                       "it was inserted outside Stillroom.")
        elif entity != "migration" and event_id in first_for:
            out.append(f"{what} repeats anchor #{first_for[event_id]}: it was inserted outside Stillroom.")
        if entity != "migration":
            first_for.setdefault(event_id, aid)
    for eid, action in walk.anchored:
        if eid > walk.boundary and eid not in first_for:
            out.append(f"event #{eid} ({action}) has no anchor: it was appended outside Stillroom.")
    return out


def _anchors_its_event(entity: str, entity_id: str, event: tuple[int, str, str, str, str]) -> bool:
    """Whether an anchor is the one ``record`` writes for the event it names: same record, an anchored action."""
    _, _, action, event_entity, event_entity_id = event
    return ANCHORED_ACTIONS.get(action) == entity == event_entity and event_entity_id == entity_id


def _boundary_problems(anchors: list[tuple[int, int, str, str, str]], coverage: Coverage | None,
                       walk: _Walk) -> list[str]:
    """A second 'migration' anchor, or a boundary that the checkpoint lines or the chain contradict."""
    # Migration 0005 created the anchor table and wrote its first row: the genuine 'migration' anchor is #1.
    out = [f"anchor #{aid} (migration {entity_id}, at event #{event_id}) is a second 'migration' anchor: only the "
           "upgrade that introduced anchors writes one, as anchor #1, so it was inserted outside Stillroom."
           for aid, event_id, _, entity, entity_id in anchors if entity == "migration" and aid != 1]
    if anchors and (anchors[0][0], anchors[0][3]) != (1, "migration"):
        out.append("anchor #1, which the upgrade that introduced anchors wrote as 'migration', is gone or changed: "
                   "the anchor table was edited.")
    stated = legacy_boundary(anchors)
    if coverage is not None and coverage.legacy is not None and coverage.legacy != stated:
        out.append(f"the checkpoint file places the last event before row hashes at #{coverage.legacy}, the "
                   f"database's 'migration' anchor at #{stated}: the anchor was edited.")
    if walk.hashed_legacy is not None:
        out.append(f"event #{walk.hashed_legacy} carries a row hash or HMAC although the 'migration' anchor places it "
                   f"before they existed (event #{walk.stated_boundary}): the anchor was moved over later events.")
    return out


def _checkpoint_problems(path: Path | None, checkpoints: list[dict], chain: ChainReport, walk: _Walk) -> list[str]:
    if path is None:
        return []
    if not checkpoints:
        if chain.checked == 0:
            return []
        return [f"there is no checkpoint at {path} although the chain holds {chain.checked} events: restore the "
                "file from backup (or copy it with the database when moving it)."]
    out = []
    for cp in sorted(checkpoints, key=lambda c: c["event_id"]):
        what = f"the checkpoint on line {cp['line']} of {path.name} (event #{cp['event_id']}, {cp['ts'][:19]})"
        got = walk.found.get(cp["event_id"])
        if got is None or (cp["first"] is not None and cp["first"] not in walk.found):
            out.append(f"{what} names an event the chain no longer has: events were deleted.")
        elif got[1] != cp["head_hash"]:
            out.append(f"{what} disagrees with the chain: it was rewritten at or before that event.")
        elif got[0] != cp["count"]:
            out.append(f"{what} counted {cp['count']} events up to it, the chain now {got[0]}: events before it "
                       "were deleted or inserted.")
    return out + _coverage_problems(path, walk)


def _coverage_problems(path: Path, walk: _Walk) -> list[str]:
    """Events after the legacy boundary that no checkpoint line says Stillroom wrote."""
    if not walk.uncovered:
        return []
    # A commit between reading the file and walking the chain is no forgery: read the file again.
    again = Coverage.of(read_checkpoints(path)[0])
    out = []
    for first, last in _runs(e for e in walk.uncovered if not again.covers(e)):
        if first > again.newest:
            out.append(f"the chain goes on after the newest checkpoint (event #{again.newest}) to event #{last}: "
                       "those events were appended outside Stillroom, or a process stopped between its commit "
                       "and the checkpoint.")
        else:
            which = f"event #{first} was" if first == last else f"events #{first}-#{last} were"
            out.append(f"{which} appended outside Stillroom: no line of the checkpoint file covers them, although "
                       "later commits wrote theirs (unless the process that committed them stopped before writing "
                       "its line).")
    return out


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending ids as runs of consecutive ones: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[list[int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return [(a, b) for a, b in out]


def _key_problems(walk: _Walk) -> list[str]:
    out = []
    if walk.bad_mac:
        out.append(f"event #{walk.bad_mac[0]} carries an HMAC that the key does not produce "
                   f"({len(walk.bad_mac)} event(s) in all): the chain was rewritten without the key.")
    if walk.unkeyed:
        out.append(f"event #{walk.unkeyed[0]} carries no HMAC although a key is configured "
                   f"({len(walk.unkeyed)} event(s) in all): it was written without the key, or rewritten.")
    return out


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
