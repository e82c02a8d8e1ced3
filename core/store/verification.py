"""``stillroom audit verify``: the chain's links, its anchors, the checkpoint file, the HMACs, every recorded row
against its event and every artifact's SHA-256, each problem named in a sentence.
"""


from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core.domain.errors import InvalidInput
from core.store import integrity
from core.store.audit import (
    ANCHORED_ACTIONS,
    GENESIS_HASH,
    Coverage,
    agreed_boundary,
    anchor_rows,
    audit_key,
    checkpoint_path,
    event_hash,
    event_mac,
    legacy_boundary,
    read_checkpoints,
)

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
    key = audit_key()
    path = checkpoint_path(engine)
    checkpoints, problems = read_checkpoints(path)
    anchors = anchor_rows(engine)
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
                         walk: _Walk) -> list[str]:
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


