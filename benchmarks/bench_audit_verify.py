"""Benchmark: verifying the audit hash chain (budget: 100,000 events in under 1 s).

Times ``core.store.verification.verify`` on a seeded record (links, anchors, the
checkpoint file and every row against its event), the links alone
(``verify_chain``), the links checked the naive way (every event loaded as an
ORM object, hashes recomputed in Python), and ``stillroom audit verify`` end to
end as a subprocess, beside the CLI's start-up alone.
Run: ``.venv/bin/python benchmarks/bench_audit_verify.py [--quick] [--strict]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import _seed
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.store import audit, verification
from core.store.db import make_engine
from core.store.models import AuditEvent

BUDGET_S = 1.0
CLI = [sys.executable, "-m", "core.cli"]


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


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # The subprocess finds the seeded database through DATABASE_URL, set by use_temp_database.
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=_seed.REPO_ROOT)
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

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        engine = make_engine(_seed.use_temp_database(Path(tmp)))
        seeded = _seed.seed(engine, n_projects=n_projects, n_events=n_events)
        fast = _seed.measure(lambda: verification.verify(engine), args.repeat)
        if not (fast.result.ok and fast.result.checked == n_events):
            raise SystemExit(f"verify did not pass on the seeded chain: {fast.result.sentence()}")
        links = _seed.measure(lambda: verification.verify_chain(engine), args.repeat)
        naive = _seed.measure(lambda: naive_verify(engine), args.repeat)
        cli = _seed.measure(lambda: run_cli("audit", "verify"), args.repeat)
        startup = _seed.measure(lambda: run_cli("audit", "--help"), args.repeat)
        engine.dispose()

    verdict = {True: "ok", False: "OVER BUDGET"}
    budget = f"< {BUDGET_S * 1000:,.0f} ms"
    _seed.print_table(
        f"Audit chain verification: {n_events:,} events, {n_projects} projects "
        f"(seeded in {seeded.seconds:.1f} s), best of {args.repeat}",
        [
            ("measure", "time", "budget", "verdict"),
            ("verify(engine)", _seed.ms(fast.best), budget, verdict[fast.best < BUDGET_S]),
            ("verify_chain(engine), links only", _seed.ms(links.best), "", ""),
            ("naive ORM load + rehash", _seed.ms(naive.best), "", ""),
            ("ratio naive / verify", f"{naive.best / fast.best:.1f}x", "", ""),
            ("CLI `stillroom audit verify`", _seed.ms(cli.best), budget, verdict[cli.best < BUDGET_S]),
            ("CLI start-up (audit --help)", _seed.ms(startup.best), "", ""),
            ("CLI minus start-up", _seed.ms(max(cli.best - startup.best, 0.0)), "", ""),
        ],
    )
    print(f"CLI said: {cli.result.stdout.strip().splitlines()[0]}")
    return 1 if args.strict and max(fast.best, cli.best) >= BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
