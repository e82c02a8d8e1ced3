"""``stillroom audit verify``: the chain's links, its anchors, the checkpoint file, the HMACs, every recorded row
against its event and every artifact's (and recorded training checkpoint copy's) SHA-256, each problem named in
a sentence.

The full check is one pass over the events (each hashed once, in the loop itself) and one over each tracked
table; on two cores a forked process walks the newest events while this one walks the oldest and hashes every
tracked row. ``record_verified`` keeps how far a full
check that passed reached, as a row with its own audit event; ``verify_since`` then checks only what follows it
(``audit verify --since``), in milliseconds, and says that nothing before it was checked again.
"""


from __future__ import annotations

import gc
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from core.domain.errors import InvalidInput, RecordTampered
from core.domain.hashing import canonical_json
from core.store import checkpoint_copies, integrity, stored_dirs
from core.store.audit import (
    ANCHORED_ACTIONS,
    GENESIS_HASH,
    Coverage,
    agreed_boundary,
    anchor_rows,
    audit_key,
    checkpoint_path,
    event_hash,
    event_macs,
    legacy_boundary,
    parse_checkpoint,
    read_checkpoints,
    record,
)
from core.store.models import VerifyCheckpoint, id_of

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
    # entity -> entity id -> (newest event id, its row hash)
    latest: dict[str, dict[str, tuple[int, str | None]]] = field(default_factory=dict)
    # event id -> (position, hash, action, entity, entity id)
    found: dict[int, tuple[int, str, str, str, str]] = field(default_factory=dict)
    hash_position: int | None = None
    anchored: list[tuple[int, str]] = field(default_factory=list)  # (event id, action) of anchored actions
    unkeyed: list[int] = field(default_factory=list)
    bad_mac: list[int] = field(default_factory=list)
    uncovered: list[int] = field(default_factory=list)  # events after the boundary that no checkpoint line covers
    hashed_legacy: int | None = None  # the first event at or before the boundary carrying a row hash or HMAC
    last_id: int = 0
    first_position: int = 0  # events before the walk's first one (a walk from a verified checkpoint)

    def covered_to(self, eid: int) -> int:
        """The last event id up to which coverage needs no second look; notes ``eid`` when no line covers it."""
        if self.coverage is None:
            return _NO_END
        if eid <= self.boundary:
            return self.boundary
        to = self.coverage.covered_to(eid)
        if to is None:
            self.uncovered.append(eid)
            return eid
        return to


_NO_END = 1 << 62
_EVENTS = ("SELECT id, ts, actor, project_id, action, entity, entity_id, payload, prev_hash, hash, row_hash, {mac} "
           "FROM audit_event")
# Without a key only whether an event carries an HMAC counts (an old event that does betrays a moved boundary): a
# 1 instead of its 64 characters, one string fewer per event to read.
_HAS_MAC = "CASE WHEN mac IS NULL THEN NULL ELSE 1 END"


def _walk(engine: Engine, walk: _Walk, *, after: tuple[int, str] | None = None, upto: int | None = None
          ) -> ChainReport:
    """Every event in id order (those after event ``after[0]``, whose hash is ``after[1]``, when given; up to
    ``upto``): its link and its hash, then what ``walk`` collects (inline, not a call per event: this loop is
    verify's cost)."""
    where = [] if after is None else [f"id > {int(after[0])}"]  # ints: no paramstyle to pick
    where += [] if upto is None else [f"id <= {int(upto)}"]
    select_ = _EVENTS.format(mac="mac" if walk.key is not None else _HAS_MAC)
    with integrity.scan_cursor(engine) as cur:
        cur.execute(f"{select_} {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id")
        return _walk_rows(cur, walk, GENESIS_HASH if after is None else after[1], None if after is None else after[0])


_SPLIT_MIN = 20_000  # events: below this a fork costs more than the second core saves
_ROW_COST = 0.7  # hashing one tracked row costs about this many event walks (bench_audit_verify)
_FORK_COST = 4_000  # the child's start (its own connection, the pages it copies), in event walks
_SPLIT_LIMITS = (0.1, 0.9)  # the share of the events the parent walks, whatever the rows


def _split(engine: Engine, top: int) -> int:
    """The last event this process walks; a forked one walks the rest. This one also hashes every tracked row, so
    it takes the oldest events up to where both are expected to finish together."""
    share = (top + _FORK_COST - _ROW_COST * integrity.tracked_rows(engine)) / (2 * top) if top else 0.5
    return int(top * min(max(share, _SPLIT_LIMITS[0]), _SPLIT_LIMITS[1]))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while verify runs: the walk keeps a tuple per tracked row, which sets off
    full collections that find nothing (reference counting frees all of it), 5-10 % of the check."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _walk_and_hash_rows(engine: Engine, fresh: Callable[[], _Walk]) -> tuple[_Walk, ChainReport, integrity.Digests]:
    """verify's pass: the chain walked and every tracked row hashed. On two cores (integrity.can_fork) a forked
    process walks the newest events while this one walks the oldest and hashes the rows; each event is read and
    judged by one of them only, and a join that does not link, or any problem in the newest events, is walked
    again here, so a report is always the one a single walk gives. Only the newest events' findings cross the
    pipe (the rows' hashes, the bigger part, stay here)."""
    walk = fresh()
    with engine.connect() as conn:
        top = conn.exec_driver_sql("SELECT max(id) FROM audit_event").scalar() or 0
    if top < _SPLIT_MIN or not integrity.can_fork(engine):
        return walk, _walk(engine, walk), integrity.row_digests(engine)
    mid = _split(engine, top)
    tail = fresh()
    wait = integrity.beside(engine, lambda: _tail_walk(engine, tail, mid))
    try:
        head = _walk(engine, walk, upto=mid)
        digests = integrity.row_digests(engine) if head.ok else {}
    finally:
        state = wait()
    if head.ok and (chain := _join(walk, head, state)) is not None:
        return walk, chain, digests
    if not head.ok:
        return walk, head, digests
    walk = fresh()  # the newest events hold a problem (or moved meanwhile): one walk names it as it always did
    return walk, _walk(engine, walk), digests


def _tail_walk(engine: Engine, tail: _Walk, mid: int) -> dict[str, Any]:
    """In the forked process: the events after ``mid``, linked to the event before them, as plain data."""
    with engine.connect() as conn:
        start = conn.exec_driver_sql(f"SELECT id, hash FROM audit_event WHERE id <= {int(mid)} ORDER BY id DESC "
                                     "LIMIT 1").first()
    after = (int(start[0]), str(start[1])) if start is not None else (0, GENESIS_HASH)
    chain = _walk(engine, tail, after=after)
    return {"after": after, "ok": chain.ok, "checked": chain.checked, "head": chain.head_hash,
            "found": tail.found, "hash_position": tail.hash_position, "anchored": tail.anchored,
            "latest": tail.latest, "unkeyed": tail.unkeyed, "bad_mac": tail.bad_mac, "uncovered": tail.uncovered,
            "hashed_legacy": tail.hashed_legacy, "last_id": tail.last_id}


def _join(walk: _Walk, head: ChainReport, tail: dict[str, Any]) -> ChainReport | None:
    """The oldest events' walk followed by the newest events' one; None unless both are intact and link."""
    if not tail["ok"] or tuple(tail["after"]) != ((walk.last_id, head.head_hash) if head.checked else
                                                   (0, GENESIS_HASH)):
        return None
    n = head.checked
    walk.found.update({eid: (pos + n, *rest) for eid, (pos, *rest) in tail["found"].items()})
    if tail["hash_position"] is not None:
        walk.hash_position = tail["hash_position"] + n
    walk.anchored += [(int(eid), str(action)) for eid, action in tail["anchored"]]
    for entity, rows in tail["latest"].items():
        walk.latest.setdefault(entity, {}).update(rows)
    walk.unkeyed += tail["unkeyed"]
    walk.bad_mac += tail["bad_mac"]
    walk.uncovered += tail["uncovered"]
    if walk.hashed_legacy is None:
        walk.hashed_legacy = tail["hashed_legacy"]
    if tail["checked"]:
        walk.last_id = tail["last_id"]
        return ChainReport(True, n + tail["checked"], tail["head"])
    return head


def _walk_rows(cur: Any, walk: _Walk, prev: str, prev_id: int | None) -> ChainReport:
    checked = 0
    found, wanted, anchored, latest = walk.found, walk.wanted_ids, walk.anchored, walk.latest
    stated, track, wanted_hash = walk.stated_boundary, walk.track, walk.wanted_hash
    mac_of, compare = event_macs(walk.key) if walk.key is not None else None, hmac.compare_digest
    covered_to = walk.covered_to(0) if walk.coverage is None else -1
    position = walk.first_position
    while rows := cur.fetchmany(10_000):
        for eid, ts, actor, pid, action, entity, entity_id, payload, prev_hash, stored, row_hash, mac in rows:
            if prev_hash != prev:
                after = f"event #{prev_id}" if prev_id is not None else "the start of the chain"
                return ChainReport(False, checked, prev, eid,
                                   f"it does not follow {after}: an event was deleted, inserted or reordered there.")
            if event_hash(prev_hash, ts, actor, pid, action, entity, entity_id, payload, row_hash) != stored:
                return ChainReport(False, checked, prev, eid,
                                   "its content no longer matches its hash: the row was edited outside Stillroom.")
            checked += 1
            if eid in wanted:
                found[eid] = (position + checked, stored, action, entity, entity_id)
            if stored == wanted_hash:
                walk.hash_position = position + checked
            if action in ANCHORED_ACTIONS:
                anchored.append((eid, action))
            if track:
                (latest.get(entity) or latest.setdefault(entity, {}))[entity_id] = (eid, row_hash)
            if mac_of is not None:
                if mac is None:
                    walk.unkeyed.append(eid)
                elif not compare(mac, mac_of(stored)):
                    walk.bad_mac.append(eid)
            if eid <= stated and walk.hashed_legacy is None and (row_hash is not None or mac is not None):
                walk.hashed_legacy = eid
            if eid > covered_to:
                covered_to = walk.covered_to(eid)
            prev, prev_id = stored, eid
    walk.last_id = prev_id or 0
    return ChainReport(True, checked, prev)


def verify_chain(engine: Engine) -> ChainReport:
    """Walk the whole chain in id order and report the first broken link (the links only)."""
    return _walk(engine, _Walk(set(), None, None))


@dataclass(frozen=True)
class Reached:
    """How far a full verify found the record intact: where ``verify_since`` starts (a ``VerifyCheckpoint`` row)."""

    event_id: int  # the newest event it checked
    head_hash: str  # that event's hash
    count: int  # events up to it
    anchor_id: int  # the newest anchor row it read
    file_offset: int  # bytes of the checkpoint file it read
    row_ids: dict[str, int]  # entity -> the highest row id of its table
    verified_at: str = ""
    record_id: int | None = None  # the verify_checkpoint row, once recorded


@dataclass(frozen=True)
class AuditReport:
    """What ``verify`` found: the chain's links, then every anchor, checkpoint, key, record and file check."""

    chain: ChainReport
    problems: list[str]
    limits: list[str]
    expect_head: str | None = None
    following: int | None = None  # events after the expected head, when it was found
    checkpoint_file: str | None = None
    reached: Reached | None = None  # a full verify that passed: how far, for ``record_verified``
    since: Reached | None = None  # ``verify_since``: the recorded verify it started after

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
        if self.since is not None:
            p = self.since
            return (f"Audit chain intact since verify checkpoint #{p.record_id} (event #{p.event_id}, verified "
                    f"{p.verified_at[:19]}): {self.chain.checked} later event(s) verified, head "
                    f"{self.chain.head_hash[:16]}; their anchors, checkpoint lines, HMACs and records agree. "
                    f"Nothing at or before event #{p.event_id} was checked again: the full `stillroom audit verify` "
                    "does that.")
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
    against its event and (``files``) every artifact's and every recorded training checkpoint copy's SHA-256;
    ``expect_head`` must be a hash in the chain."""
    with _collector_paused():
        return _verify(engine, expect_head=expect_head, files=files)


def _verify(engine: Engine, *, expect_head: str | None, files: bool) -> AuditReport:
    key = audit_key()
    path = checkpoint_path(engine)
    offset = _file_size(path)  # before reading: a line appended meanwhile is read again by --since, never skipped
    checkpoints, problems = read_checkpoints(path)
    anchors = anchor_rows(engine)
    expect = _expected_head(expect_head)
    coverage = Coverage.of(checkpoints) if checkpoints else None
    stated = legacy_boundary(anchors)
    boundary = agreed_boundary(stated, coverage)
    wanted = {a[1] for a in anchors} | {c["event_id"] for c in checkpoints} | {c["first"] for c in checkpoints}
    walk, chain, digests = _walk_and_hash_rows(engine, lambda: _Walk(
        wanted - {None}, expect, key, track=True, boundary=boundary, stated_boundary=stated, coverage=coverage))
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
    highest: dict[str, int] = {}
    problems += integrity.record_problems(engine, latest=walk.latest, bad_mac=set(walk.bad_mac), boundary=boundary,
                                          digests=digests, highest=highest)
    if files:
        problems += integrity.artifact_problems(engine)
        problems += checkpoint_copies.copy_problems(engine)  # training checkpoints copied to the store (issue 20)
        problems += stored_dirs.teacher_copy_problems(engine)  # local teachers' model files copied there
    reached = Reached(walk.last_id, chain.head_hash, chain.checked, max((a[0] for a in anchors), default=0), offset,
                      highest)
    return AuditReport(chain, problems, limits(key), expect, following, str(path) if path else None,
                       reached=reached)


def _file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _expected_head(expect_head: str | None) -> str | None:
    expect = (expect_head or "").strip().lower() or None
    if expect is not None and not re.fullmatch(r"[0-9a-f]{64}", expect):
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


def _anchor_problems(anchors: list[tuple[int, int, str, str, str]], walk: _Walk) -> list[str]:
    """Anchors naming a deleted, rewritten or unanchored event, repeated ones, and anchored events without one."""
    out: list[str] = []
    first_for: dict[int, int] = {}
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


def _checkpoint_problems(path: Path | None, checkpoints: list[dict[str, Any]], chain: ChainReport,
                         walk: _Walk, reread: Callable[[], Coverage] | None = None) -> list[str]:
    if path is None:
        return []
    if not checkpoints and reread is None:
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
    return out + _coverage_problems(path, walk, reread)


def _coverage_problems(path: Path, walk: _Walk, reread: Callable[[], Coverage] | None = None) -> list[str]:
    """Events after the legacy boundary that no checkpoint line says Stillroom wrote."""
    if not walk.uncovered:
        return []
    # A commit between reading the file and walking the chain is no forgery: read the file again.
    again = reread() if reread is not None else Coverage.of(read_checkpoints(path)[0])
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




# --------------------------------------------------------------------------- verify --since a recorded full verify


_VERIFIED = "verify_checkpoint"  # the tracked entity (and table) a full verify records its reach in
_SINCE_LIMIT = ("with --since, anything at or before the checkpoint's event: an event edited there, or a row edited "
                "outside Stillroom that no later event names; the full `stillroom audit verify` checks those.")


def record_verified(engine: Engine, report: AuditReport, *, actor: str = "audit-verify") -> Reached:
    """Record how far a full verify that passed found the record intact, as a row with its own audit event (so one
    INSERTed with SQL vouches for nothing); returns it with its id, the CHECKPOINT ``verify_since`` takes."""
    r = report.reached
    if r is None or not report.ok or report.since is not None:
        raise InvalidInput("only a full verify that passed can be recorded as a verify checkpoint.", field="report")
    with Session(engine) as session:
        row = VerifyCheckpoint(event_id=r.event_id, head_hash=r.head_hash, count=r.count, anchor_id=r.anchor_id,
                               file_offset=r.file_offset, row_ids=canonical_json(r.row_ids),
                               verified_at=datetime.now(UTC).isoformat(timespec="microseconds"))
        session.add(row)
        session.flush()
        record(session, actor=actor, action="audit.verified", entity=_VERIFIED, entity_id=id_of(row),
               payload={"event_id": r.event_id, "head_hash": r.head_hash, "count": r.count})
        session.commit()
        return replace(r, verified_at=row.verified_at, record_id=id_of(row))


def verify_since(engine: Engine, *, since: str = "last") -> AuditReport:
    """Check only what follows a full verify that ``record_verified`` recorded (``since``: "last" or its id): the
    events after the event it reached (links, hashes, HMACs, anchors, checkpoint lines and their coverage), the rows
    those events name and the rows added since, and that the recorded verify is itself one Stillroom wrote.

    Nothing at or before that event is checked again (the full ``verify`` does that); that the event is still there
    with the recorded hash is."""
    point = _verified_point(engine, since)
    key = audit_key()
    path = checkpoint_path(engine)
    lines, problems = _lines_after(path, point)
    coverage = _since_coverage(point, lines)
    with engine.connect() as conn:
        anchors = [tuple(a) for a in conn.exec_driver_sql(
            "SELECT id, event_id, head_hash, entity, entity_id FROM audit_anchor WHERE event_id > "
            f"{point.event_id} ORDER BY id").all()]
        stated = conn.exec_driver_sql("SELECT min(event_id) FROM audit_anchor WHERE entity = 'migration'").scalar()
        problems += _start_problems(conn, point)
    boundary = agreed_boundary(stated or 0, coverage)
    lines = [cp for cp in lines if cp["event_id"] > point.event_id]
    wanted = {a[1] for a in anchors} | {c["event_id"] for c in lines} | {c["first"] for c in lines}
    walk = _Walk(wanted - {None}, None, key, track=True, boundary=boundary, stated_boundary=stated or 0,
                 coverage=coverage, first_position=point.count)
    chain = _walk(engine, walk, after=(point.event_id, point.head_hash))
    out = limits(key) + [_SINCE_LIMIT]
    if not chain.ok:
        return AuditReport(chain, problems, out, since=point)
    problems = _own_problems(point, walk) + problems
    problems += _anchor_problems(anchors, walk)
    problems += _checkpoint_problems(path, lines, chain, walk, reread=lambda: _since_coverage(
        point, _lines_after(path, point)[0]))
    problems += _key_problems(walk)
    problems += integrity.record_problems(engine, latest=walk.latest, bad_mac=set(walk.bad_mac), boundary=boundary,
                                          above=point.row_ids)
    return AuditReport(chain, problems, out, checkpoint_file=str(path) if path else None, since=point)


def _verified_point(engine: Engine, since: str) -> Reached:
    """The recorded verify ``since`` names, as stored (``_own_problems`` then checks that Stillroom wrote it)."""
    which = since.strip().lower()
    if which != "last" and not which.isdigit():
        raise InvalidInput(f"--since {since!r} names no verify checkpoint: give 'last' or the number a full "
                           "`stillroom audit verify` printed.", field="since")
    where = "ORDER BY id DESC LIMIT 1" if which == "last" else f"WHERE id = {int(which)}"
    with engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT id, event_id, head_hash, count, anchor_id, file_offset, row_ids, "
                                   f"verified_at FROM {_VERIFIED} {where}").first()
    if row is None:
        raise InvalidInput("no full verify has been recorded yet: run `stillroom audit verify --record` once, then "
                           "--since."
                           if which == "last" else f"there is no verify checkpoint #{which}: give 'last' or the "
                           "number `stillroom audit verify --record` printed.", field="since")
    rid, event_id, head, count, anchor_id, offset, row_ids, at = row
    try:
        ids = json.loads(row_ids)
        return Reached(int(event_id), str(head), int(count), int(anchor_id), int(offset),
                       {str(k): int(v) for k, v in ids.items()}, str(at), int(rid))
    except (ValueError, TypeError, AttributeError) as exc:
        raise RecordTampered(f"verify checkpoint #{rid} is not one Stillroom wrote ({exc}): it was edited outside "
                             "Stillroom. Run the full `stillroom audit verify`.") from exc


def _lines_after(path: Path | None, point: Reached) -> tuple[list[dict[str, Any]], list[str]]:
    """The checkpoint file's lines after the bytes the recorded verify read, and a problem when the file no longer
    continues those bytes or holds a line that is not a checkpoint."""
    if path is None:
        return [], []
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    at = point.file_offset
    if len(data) < at or (at > 0 and data[at - 1:at] != b"\n"):
        return [], [f"the checkpoint file {path} no longer continues what verify checkpoint #{point.record_id} read "
                    f"({at} bytes): it was cut, replaced or rewritten. Run the full `stillroom audit verify`."]
    first = data.count(b"\n", 0, at) + 1
    out, bad = [], []
    for n, line in enumerate(data[at:].decode("utf-8", errors="replace").splitlines(), start=first):
        try:
            out.append(parse_checkpoint(line, n))
        except (ValueError, KeyError, TypeError):
            bad.append(f"line {n} of the checkpoint file {path} is not a checkpoint: the file was edited.")
    return out, bad


def _since_coverage(point: Reached, lines: list[dict[str, Any]]) -> Coverage:
    """The lines after the recorded verify, over the events it vouched for (all up to its event)."""
    cov = Coverage(lenient_to=point.event_id, newest=point.event_id)
    for cp in lines:
        cov.add(cp["first"], cp["event_id"], cp["legacy"])
    return cov


def _start_problems(conn: Connection, point: Reached) -> list[str]:
    """The event the recorded verify reached must still be there with its hash. (No count of the events up to it:
    that reads the whole table; a deletion before it shows in the counts of the checkpoint lines written since.)"""
    what = f"event #{point.event_id}, where verify checkpoint #{point.record_id} ends,"
    got = conn.exec_driver_sql(f"SELECT hash FROM audit_event WHERE id = {point.event_id}").scalar()
    if got is None:
        return [f"{what} is gone: events were deleted. Run the full `stillroom audit verify`."]
    if got != point.head_hash:
        return [f"{what} no longer has the hash that verify recorded: the chain was rewritten at or before it. "
                "Run the full `stillroom audit verify`."]
    return []


def _own_problems(point: Reached, walk: _Walk) -> list[str]:
    """A recorded verify is written with its own event, after the event it reached: without one it is forged."""
    if str(point.record_id) in walk.latest.get(_VERIFIED, {}):
        return []  # its row is checked against that event with the other rows, its event with the others
    return [f"verify checkpoint #{point.record_id} has no audit event after event #{point.event_id}, the one it names: "
            "it was inserted or edited outside Stillroom, and nothing checked from it counts. Run the full "
            "`stillroom audit verify`."]
