"""Issue 18: the fast full verify (one inline pass over the events, one over each tracked table) keeps every finding.

The pass asks the checkpoint coverage once per covered stretch, not once per event, hashes each event once and
computes the HMAC from the key's pads hashed once; on two cores a forked process walks the newest events while the
caller walks the oldest and hashes the tracked rows, and every report is the one a single walk gives. Tables are
compared with their events in one list comparison when every row is intact, the file is memory-mapped for the
scans, and the garbage collector pauses meanwhile. Each shortcut is checked here against
the definition it replaces.
"""

from __future__ import annotations

import gc
import hashlib
import hmac

import pytest
from audit_attacks import append_forged, mac_everything, raw, rechain
from sqlalchemy import text
from sqlmodel import Session

from core.access import projects
from core.domain.hashing import sha256_hex
from core.store import audit, config, integrity, rowhash, verification
from core.store.audit import Coverage
from core.store.db import make_engine


def test_event_hash_and_mac_are_the_definitions():
    fields = ("0" * 64, "2026-12-01T00:00:00.000000+00:00", "ada", "", "project.create", "project", "7", "{}")
    assert audit.event_hash(*fields[:3], None, *fields[4:]) == sha256_hex("\x1f".join(fields))
    assert audit.event_hash(*fields[:3], 5, *fields[4:], "ab") == sha256_hex("\x1f".join(
        (*fields[:3], "5", *fields[4:], "ab")))
    h = "f" * 64
    for key in (b"k" * 40, b"k" * 64, b"a-key-longer-than-one-block-" * 4):  # short, one block, hashed first
        assert audit.event_macs(key)(h) == audit.event_mac(key, h) == hmac.new(key, h.encode(), hashlib.sha256
                                                                               ).hexdigest()


def test_covered_to_names_the_end_of_each_covered_stretch():
    cov = Coverage()
    cov.add(None, 4, None)  # a line without a range: everything up to event 4
    cov.add(6, 9, 0)
    cov.add(12, 12, 0)
    assert [cov.covered_to(e) for e in (1, 4, 5, 6, 9, 10, 11, 12, 13)] == [4, 4, None, 9, 9, None, None, 12, None]
    assert all((cov.covered_to(e) is not None) == cov.covers(e) for e in range(0, 15))


def _commits(engine, demo, n: int, name: str = "Fast path") -> None:
    for i in range(n):
        with Session(engine) as s:
            projects.create_project(s, actor=s.merge(demo["admin"]), name=f"{name} {i}")


def test_every_gap_in_the_coverage_is_reported_not_only_the_first(engine, demo):
    _commits(engine, demo, 5)
    path = audit.checkpoint_path(engine)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    dropped = [audit.parse_checkpoint(lines[i], 0) for i in (-4, -2)]  # two commits, not adjacent
    path.write_text("".join(line for i, line in enumerate(lines) if i - len(lines) not in (-4, -2)), encoding="utf-8")
    problems = verification.verify(engine, files=False).problems
    for cp in dropped:
        first, last = cp["first"], cp["event_id"]
        which = f"event #{first} was" if first == last else f"events #{first}-#{last} were"
        assert any(p.startswith(f"{which} appended outside Stillroom") for p in problems), problems


def test_a_full_verify_says_how_far_it_reached(engine, demo):
    _commits(engine, demo, 1)
    report = verification.verify(engine, files=False)
    with engine.connect() as conn:
        last, head = conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1")).one()
        projects_top = conn.execute(text("SELECT max(id) FROM project")).scalar()
        anchor_top = conn.execute(text("SELECT max(id) FROM audit_anchor")).scalar()
    reached = report.reached
    assert (reached.event_id, reached.head_hash, reached.count) == (last, head, report.checked)
    assert reached.row_ids["project"] == projects_top and reached.anchor_id == anchor_top
    assert reached.file_offset == audit.checkpoint_path(engine).stat().st_size


def test_an_edited_row_among_many_is_named_once_in_id_order(engine, demo):
    _commits(engine, demo, 3)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM project ORDER BY id DESC LIMIT 2"))]
    raw(engine, *(f"UPDATE project SET description = 'edited' WHERE id = {i}" for i in ids))
    problems = [p for p in verification.verify(engine, files=False).problems if p.startswith("project #")]
    assert [p.split()[1] for p in problems] == [f"#{i}" for i in sorted(ids)]


def _both_ways(engine, monkeypatch) -> list:
    """verify's report walked by one process, then split with a forked one (forced on this small chain)."""
    out = []
    for fork in (False, True):
        monkeypatch.setattr(integrity, "can_fork", lambda _engine, fork=fork: fork)
        monkeypatch.setattr(verification, "_SPLIT_MIN", 0)
        report = verification.verify(engine, files=False)
        out.append((report.ok, report.checked, report.head_hash, report.broken_at, report.problem, report.problems,
                    report.reached))
    return out


def test_rows_hashed_and_events_walked_in_a_forked_process_give_the_same_findings(engine, demo, monkeypatch):
    _commits(engine, demo, 3)
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM project")).scalar()
    intact = _both_ways(engine, monkeypatch)
    assert intact[0] == intact[1] and intact[0][0]
    raw(engine, f"UPDATE project SET description = 'edited' WHERE id = {top}",
        f"DELETE FROM project WHERE id = {top - 1}",
        "INSERT INTO project (name, description, created_at) VALUES ('forged', '', '2026-12-01 00:00:00')")
    one, split = _both_ways(engine, monkeypatch)
    assert one == split
    assert [p.split(",")[0].split(" ")[:2] for p in split[5] if p.startswith("project #")] == [
        ["project", f"#{top}"], ["project", f"#{top + 1}"], ["project", f"#{top - 1}"]]
    with Session(engine) as s:  # the child's exit left the parent's connections working
        assert s.exec(text("SELECT count(*) FROM project")).one()[0] >= 3


@pytest.mark.parametrize("where", ["oldest", "newest", "last"])
@pytest.mark.parametrize("how", ["edited", "deleted", "forged"])
def test_a_broken_chain_is_named_alike_split_or_not(engine, demo, monkeypatch, where, how):
    _commits(engine, demo, 4)
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
    target = {"oldest": 2, "newest": verification._split(engine, top) + 2, "last": top}[where]
    if how == "forged":
        append_forged(engine, action="project.create", entity="project", entity_id="1", project_id=1)
        if where != "last":  # a genuine commit after it: no pending tail, an uncovered event
            _commits(engine, demo, 1, name="After the forgery")
    else:
        raw(engine, f"UPDATE audit_event SET actor = 'mallory' WHERE id = {target}" if how == "edited"
            else f"DELETE FROM audit_event WHERE id = {target}")
    one, split = _both_ways(engine, monkeypatch)
    assert one == split and not one[0]


def test_under_the_key_split_or_not_find_the_same(engine, demo, monkeypatch):
    _commits(engine, demo, 4)
    mac_everything(engine, b"k" * 40)
    monkeypatch.setenv("STILLROOM_AUDIT_KEY", "k" * 40)
    config.get_settings.cache_clear()
    try:
        assert _both_ways(engine, monkeypatch)[1][0]
        append_forged(engine, action="project.create", entity="project", entity_id="1", project_id=1)
        one, split = _both_ways(engine, monkeypatch)
        assert one == split and any("carries no HMAC" in p for p in split[5])
    finally:
        config.get_settings.cache_clear()


# --------------------------------------------------------------------------- issue 18, the second round


def _row_by_row(monkeypatch) -> None:
    monkeypatch.setattr(integrity, "_all_carried", lambda rows, expected: False)


@pytest.mark.parametrize("case", ["gone-unhashed-and-unnamed", "edited", "unhashed", "bad-mac", "legacy", "intact"])
def test_the_table_wide_comparison_names_what_the_row_by_row_one_names(monkeypatch, case):
    """The shortcut (every row there with its event's hash, compared as two lists) against the loop it skips, on
    the shapes that could fool it: equal counts with one row gone and another unnamed, a hash that is None."""
    spec = rowhash.TRACKED["project"]
    h = [sha256_hex(str(i)) for i in range(5)]
    rows = {"1": h[1], "3": h[3]}
    expected = {"gone-unhashed-and-unnamed": {"1": (10, h[1]), "2": (11, None)},
                "edited": {"1": (10, h[1]), "3": (12, h[4])}, "unhashed": {"1": (10, h[1]), "3": (12, None)},
                "bad-mac": {"1": (10, h[1]), "3": (12, h[3])}, "legacy": {"1": (1, h[1]), "3": (2, None)},
                "intact": {"1": (10, h[1]), "3": (12, h[3])}}[case]
    kw = {"bad_mac": {12} if case == "bad-mac" else set(), "boundary": 2}
    fast = integrity._compare(spec, rows, expected, **kw)
    _row_by_row(monkeypatch)
    assert fast == integrity._compare(spec, rows, expected, **kw)
    assert bool(fast) is (case not in ("intact", "legacy")), fast


def test_a_full_verify_finds_the_same_with_and_without_the_table_wide_comparison(engine, demo, monkeypatch):
    _commits(engine, demo, 3)
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM project")).scalar()
    raw(engine, f"DELETE FROM project WHERE id = {top - 1}",  # as many rows as events name, one of them unnamed
        "INSERT INTO project (name, description, created_at) VALUES ('forged', '', '2026-12-01 00:00:00')")
    fast = verification.verify(engine, files=False).problems
    _row_by_row(monkeypatch)
    assert fast == verification.verify(engine, files=False).problems
    assert any("has no audit event" in p for p in fast) and any("is gone" in p for p in fast), fast


def test_a_scan_maps_the_file_and_gives_the_connection_back_as_it_was(db_url):
    eng = make_engine(db_url)  # its own pool: the one connection it makes is the one the scan borrows
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql("PRAGMA mmap_size=65536")
        with integrity.scan_cursor(eng) as cur:
            cur.execute("PRAGMA mmap_size")
            assert cur.fetchone()[0] > 65536
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 65536
    finally:
        eng.dispose()


def test_verify_pauses_the_garbage_collector_and_leaves_it_as_it_found_it(engine, demo, monkeypatch):
    seen = []
    walk = verification._walk
    monkeypatch.setattr(verification, "_walk", lambda *a, **kw: seen.append(gc.isenabled()) or walk(*a, **kw))
    assert gc.isenabled()
    assert verification.verify(engine, files=False).ok
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        verification.verify(engine, files=False)
        assert not gc.isenabled()  # a caller that paused it itself keeps it paused
    finally:
        gc.enable()


def test_the_process_that_hashes_the_rows_walks_fewer_of_the_events(engine, demo, monkeypatch):
    with engine.connect() as conn:
        tops = [conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {spec.table}").scalar()
                for spec in rowhash.TRACKED.values()]
    assert integrity.tracked_rows(engine) == sum(tops)
    shares = []
    for rows in (0, 50_000, 10**9):
        monkeypatch.setattr(integrity, "tracked_rows", lambda _engine, rows=rows: rows)
        shares.append(verification._split(engine, 100_000) / 100_000)
    assert shares[0] > 0.5 > shares[1] > shares[2] == verification._SPLIT_LIMITS[0]


def test_without_a_key_an_hmac_on_an_event_before_the_boundary_is_still_seen(engine, demo):
    """Unkeyed, the walk reads only whether each event carries an HMAC: enough to catch one on an event that the
    'migration' anchor places before HMACs existed (a boundary moved over later events)."""
    _commits(engine, demo, 2)
    with engine.connect() as conn:
        event = conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
    raw(engine, "UPDATE audit_anchor SET event_id = :e, head_hash = (SELECT hash FROM audit_event WHERE id = :e) "
        "WHERE entity = 'migration'", f"UPDATE audit_event SET mac = '{'ab' * 32}' WHERE id = 1",
        "UPDATE audit_event SET row_hash = NULL WHERE id = 1", params={"e": event})
    rechain(engine)
    problems = verification.verify(engine, files=False).problems
    assert any(p.startswith("event #1 carries a row hash or HMAC although the 'migration' anchor places it before")
               for p in problems), problems
