"""Benchmark: how long `stillroom` takes to start for the commands that load no model (budget: 300 ms).

Each command runs as a fresh subprocess (`python -m core.cli ...`, as the `stillroom` script does); the figure is
the median of N runs. Beside them, in the same run: the interpreter's floor (`python -c pass`), click's floor
(`python -c "import click"`), and the floor of any command that opens the database (import the table models,
open and check the schema), with commands that really open a small fresh database.
Run: ``.venv/bin/python benchmarks/bench_cli_start.py [--quick] [--repeat N] [--strict]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _seed

REPO_ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 0.3
PY = [sys.executable]
CLI = [*PY, "-m", "core.cli"]

HELP = [["--help"], ["audit", "--help"], ["audit", "verify", "--help"], ["gate", "--help"], ["review", "--help"],
        ["decide", "--help"], ["record", "--help"], ["users", "--help"], ["whoami", "--help"],
        ["jobs", "list", "--help"]]
OPENS_DATABASE = [["--as", "ada", "whoami"], ["--as", "ada", "users", "list"], ["--as", "ada", "jobs", "list", "p1"],
                  ["--as", "ada", "gate", "history", "p1"], ["audit", "verify", "--no-files"]]
DATABASE_FLOOR = "from core.store import db; db.init_db(db.get_engine())"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_s(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """The median wall time and the median CPU time (user + system: less swayed by other processes on a loaded
    machine) of `repeat` runs of argv; a failed run ends the benchmark."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _children_cpu_s()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu_s() - c0)
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return statistics.median(walls), statistics.median(cpus)


def fresh_database(directory: Path) -> dict[str, str]:
    """The environment of a fresh SQLite database holding one admin (ada) and one project (p1)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'stillroom.db'}",
           "STILLROOM_DATA_DIR": str(directory), "STILLROOM_TOKEN_FILE": str(directory / "token"),
           "STILLROOM_ADMIN_PASSWORD": "bench-password", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("STILLROOM_TOKEN", None)
    for argv in (["init", "--admin", "ada"], ["--as", "ada", "projects", "create", "p1"]):
        median_s([*CLI, *argv], 1, env)
    return env


def row(label: str, timed: tuple[float, float], floor: tuple[float, float], budget: bool) -> tuple[str, ...]:
    (wall, cpu), verdict = timed, ("ok" if timed[0] <= BUDGET_S else "OVER BUDGET") if budget else ""
    return (label, f"{wall * 1000:,.1f} ms", f"{wall / floor[0]:.1f}x", f"{cpu * 1000:,.1f} ms",
            f"{cpu / floor[1]:.1f}x", f"< {BUDGET_S * 1000:.0f} ms" if budget else "", verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs each: a smoke run, not a measurement.")
    parser.add_argument("--repeat", type=int, help="Runs per command; the median counts (default 9).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a --help command misses the budget.")
    args = parser.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 9)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-cli-") as tmp:
        env = fresh_database(Path(tmp))
        python = median_s([*PY, "-c", "pass"], repeat, env)
        click_floor = median_s([*PY, "-c", "import click"], repeat, env)
        helps = [(a, median_s([*CLI, *a], repeat, env)) for a in HELP]
        db_floor = median_s([*PY, "-c", DATABASE_FLOOR], repeat, env)
        opens = [(a, median_s([*CLI, *a], repeat, env)) for a in OPENS_DATABASE]
    load_after = os.getloadavg()

    header = ("command", "wall", "x python", "cpu", "x python", "budget", "verdict")
    _seed.print_table(
        f"CLI start-up: median of {repeat} runs each, as subprocesses; ratios against `python -c pass` "
        f"({python[0] * 1000:.1f} ms) measured in the same run",
        [header, row("floor: python -c pass", python, python, False),
         row("floor: python -c 'import click'", click_floor, python, False),
         *[row(f"stillroom {' '.join(a)}", s, python, True) for a, s in helps]])
    print()
    _seed.print_table(
        "Commands that open the database (a fresh SQLite file: one admin, one project)",
        [header, row("floor: import core.store.db + init_db", db_floor, python, False),
         *[row(f"stillroom {' '.join(a)}", s, python, False) for a, s in opens]])
    worst = max(s[0] for _, s in helps)
    opened = [s[0] for _, s in opens]
    print(f"\nslowest --help {worst * 1000:,.1f} ms, {worst / click_floor[0]:.1f}x `import click`; commands that "
          f"open the database take {min(opened) * 1000:,.1f} to {max(opened) * 1000:,.1f} ms against their floor of "
          f"{db_floor[0] * 1000:,.1f} ms")
    print(f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores")
    return 1 if args.strict and worst > BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
