"""Benchmark: verifying the audit hash chain (budget: 100,000 events in 300 ms, within 3x of the floor).

Times ``core.store.verification.verify`` on a seeded record (links, anchors, the checkpoint file, every row
against its event; artifact files excluded), beside the floor timed in the same run (read every event row with a
plain sqlite3 cursor and hash each payload once), the same check under STILLROOM_AUDIT_KEY (every event's HMAC
too), the links alone (``verify_chain``), the links checked the naive way (every event loaded as an ORM object),
``verify_since`` after a recorded full verify and 100 more events, and ``stillroom audit verify`` (full and
``--since last``) end to end as a subprocess, beside the CLI's start-up alone. Prints the machine's load.
Run: ``.venv/bin/python benchmarks/bench_audit_verify.py [--quick] [--strict]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _seed
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.store import audit, config, db, verification
from core.store.db import make_engine
from core.store.models import AuditEvent, table_of

BUDGET_S = 0.3  # the full check on 100,000 events
FLOOR_RATIO = 3.0  # ... and at most this many times the floor
CLI_BUDGET_S = 1.0
SINCE_EVENTS = 100  # events appended after the recorded full verify, for --since
BENCH_KEY = "bench-audit-key-not-a-secret"
CLI = [sys.executable, "-m", "core.cli"]


def floor_pass(engine: Engine) -> int:
    """What any full check must at least do: read every event row and hash each payload once."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT * FROM audit_event ORDER BY id")
        sha = hashlib.sha256
        n = 0
        while rows := cur.fetchmany(10_000):
            for row in rows:
                sha(row[7].encode()).hexdigest()
            n += len(rows)
        cur.close()
    finally:
        raw.close()
    return n


def naive_verify(engine: Engine) -> int:
    """The chain check written the obvious way: load every event as an ORM object.

    Returns how many events it checked; a broken link ends the benchmark.
    """
    prev = audit.GENESIS_HASH
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        for ev in events:
            digest = audit.event_hash(ev.prev_hash, ev.ts, ev.actor, ev.project_id, ev.action, ev.entity,
                                      ev.entity_id, ev.payload, ev.row_hash)
            if ev.prev_hash != prev or digest != ev.hash:
                raise SystemExit(f"naive check: chain broken at event #{ev.id}")
            prev = ev.hash
    return len(events)


def mac_all(engine: Engine, key: bytes) -> None:
    """Give every seeded event its HMAC, as a database written under the key from its first event has."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
        pairs = [{"m": audit.event_mac(key, h), "i": i}
                 for i, h in conn.exec_driver_sql("SELECT id, hash FROM audit_event").all()]
        events = table_of(AuditEvent)
        conn.execute(events.update().where(events.c.id == bindparam("i")).values(mac=bindparam("m")), pairs)
    db.install_guards(engine)


def set_key(key: str | None) -> None:
    if key is None:
        os.environ.pop("STILLROOM_AUDIT_KEY", None)
    else:
        os.environ["STILLROOM_AUDIT_KEY"] = key
    config.get_settings.cache_clear()


def append_events(engine: Engine, n: int) -> None:
    """``n`` genuine events after the recorded verify, ten per commit (each commit writes its checkpoint line)."""
    for start in range(0, n, 10):
        with Session(engine) as session:
            for i in range(start, min(start + 10, n)):
                audit.record(session, actor="bench", action="bench.note", entity="note", entity_id=i,
                             payload={"n": i})
            session.commit()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # The subprocess finds the seeded database through DATABASE_URL, set by use_temp_database. In its own process
    # (STILLROOM_DAEMON=off), the slower case: bench_cli_start.py measures the warm daemon beside it.
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=_seed.REPO_ROOT,
                          env={**os.environ, "STILLROOM_DAEMON": "off"})
    if done.returncode != 0:
        raise SystemExit(f"`stillroom {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events: a smoke run, not a measurement.")
    parser.add_argument("--events", type=int, help="How many audit events to seed (default 100,000).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measure; the best counts.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a budget is missed.")
    args = parser.parse_args(argv)
    n_events = args.events or (5_000 if args.quick else 100_000)
    n_projects = 20 if args.quick else 200
    load_before = os.getloadavg()
    set_key(None)

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        engine = make_engine(_seed.use_temp_database(Path(tmp)))
        seeded = _seed.seed(engine, n_projects=n_projects, n_events=n_events)
        mac_all(engine, BENCH_KEY.encode())  # checked only under the key: the unkeyed check ignores them
        fast = _seed.measure(lambda: verification.verify(engine, files=False), args.repeat)
        if not (fast.result.ok and fast.result.checked == n_events):
            raise SystemExit(f"verify did not pass on the seeded chain: {fast.result.sentence()}")
        floor = _seed.measure(lambda: floor_pass(engine), args.repeat)
        links = _seed.measure(lambda: verification.verify_chain(engine), args.repeat)
        naive = _seed.measure(lambda: naive_verify(engine), args.repeat)
        set_key(BENCH_KEY)
        keyed = _seed.measure(lambda: verification.verify(engine, files=False), args.repeat)
        set_key(None)
        if not keyed.result.ok:
            raise SystemExit(f"verify under the key did not pass: {keyed.result.sentence()}")
        cli = _seed.measure(lambda: run_cli("audit", "verify", "--no-files"), args.repeat)
        verification.record_verified(engine, fast.result)
        append_events(engine, SINCE_EVENTS)
        since = _seed.measure(lambda: verification.verify_since(engine), args.repeat)
        if not (since.result.ok and since.result.checked == SINCE_EVENTS + 1):
            raise SystemExit(f"verify --since did not pass: {since.result.sentence()}")
        cli_since = _seed.measure(lambda: run_cli("audit", "verify", "--since", "last"), args.repeat)
        startup = _seed.measure(lambda: run_cli("audit", "--help"), args.repeat)
        engine.dispose()

    load_after = os.getloadavg()
    verdict = {True: "ok", False: "OVER BUDGET"}
    budget, cli_budget = f"< {BUDGET_S * 1000:,.0f} ms", f"< {CLI_BUDGET_S * 1000:,.0f} ms"
    ratio = fast.best / floor.best
    _seed.print_table(
        f"Audit chain verification: {n_events:,} events, {n_projects} projects "
        f"(seeded in {seeded.seconds:.1f} s), best of {args.repeat}",
        [
            ("measure", "time", "budget", "verdict"),
            ("verify(engine)", _seed.ms(fast.best), budget, verdict[fast.best < BUDGET_S]),
            ("floor: read rows, hash each payload", _seed.ms(floor.best), "", ""),
            ("ratio verify / floor", f"{ratio:.2f}x", f"<= {FLOOR_RATIO:.0f}x", verdict[ratio <= FLOOR_RATIO]),
            ("verify(engine) under the key", _seed.ms(keyed.best), "", ""),
            ("verify_chain(engine), links only", _seed.ms(links.best), "", ""),
            ("naive ORM load + rehash", _seed.ms(naive.best), "", ""),
            ("ratio naive / verify", f"{naive.best / fast.best:.1f}x", "", ""),
            (f"verify_since, {SINCE_EVENTS + 1} events after", _seed.ms(since.best), "", ""),
            ("CLI `stillroom audit verify`", _seed.ms(cli.best), cli_budget, verdict[cli.best < CLI_BUDGET_S]),
            ("CLI `audit verify --since last`", _seed.ms(cli_since.best), "", ""),
            ("CLI start-up (audit --help)", _seed.ms(startup.best), "", ""),
            ("CLI minus start-up", _seed.ms(max(cli.best - startup.best, 0.0)), "", ""),
        ],
    )
    print(f"CLI said: {cli.result.stdout.strip().splitlines()[0]}")
    print(f"CLI --since said: {cli_since.result.stdout.strip().splitlines()[0][:120]}...")
    print("load average (1, 5, 15 min): before " + ", ".join(f"{x:.2f}" for x in load_before)
          + "; after " + ", ".join(f"{x:.2f}" for x in load_after) + f" on {os.cpu_count()} CPU(s)")
    missed = fast.best >= BUDGET_S or ratio > FLOOR_RATIO or cli.best >= CLI_BUDGET_S
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
