"""Benchmark: how long `stillroom` takes to start and finish for the commands that load no model (budget: 300 ms).

Each command runs as a fresh subprocess (`python -m core.cli ...`, as the `stillroom` script does); the figure is
the median of N runs, wall time and CPU time (user + system, steadier on a loaded machine). Measured in the same
run, beside them:
- the interpreter's floor (`python -c pass`) and click's (`python -c "import click"`);
- a raw read: stdlib sqlite3 reads the acting person's row, the project and their audit events and hashes each
  event's payload, which is what `whoami` reads and checks, with no library at all;
- SQLAlchemy Core's import alone, and the libraries the table models and the settings stand on (SQLAlchemy's ORM,
  SQLModel, pydantic-settings): no command that opens the database through core can start faster than that;
- the floor of any command that opens the database: import core.store.db (the table models) and init_db.
Each command that opens the database is shown beside its own `--help`, with the ratios against its `--help`, the
library floor and the raw read, run twice: in its own process (STILLROOM_DAEMON=off, as the first command after
the daemon's idle exit runs) and through the warm daemon (core.cli.warm, the default), with the ratio between the
two; and the first command when no daemon runs (it runs in its own process and starts the daemon beside it).
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
# (argv, the exit code it ends with on the benchmark's database): a refusal still runs the command's imports and
# its first reads, so `review kappa` on an evaluation that does not exist is timed too, and says so.
OPENS_DATABASE: list[tuple[list[str], int]] = [
    (["--as", "ada", "whoami"], 0), (["--as", "ada", "users", "list"], 0), (["--as", "ada", "jobs", "list", "p1"], 0),
    (["--as", "ada", "gate", "history", "p1"], 0), (["audit", "verify", "--no-files"], 0),
    (["--as", "ada", "record", "p1"], 0), (["--as", "ada", "review", "kappa", "1"], 2)]
LIBRARY_FLOOR = "import click, sqlalchemy.orm, sqlmodel, pydantic_settings"
FLOORS = {
    "python -c pass": "pass",
    "python -c 'import click'": "import click",
    "raw sqlite3 read of whoami's rows": """
import hashlib, os, sqlite3
db = sqlite3.connect(os.environ["DATABASE_URL"].split("///", 1)[1])
user = db.execute("SELECT * FROM user WHERE username = ?", ("ada",)).fetchone()
project = db.execute("SELECT * FROM project WHERE name = ?", ("p1",)).fetchone()
events = db.execute("SELECT payload, row_hash FROM audit_event WHERE entity IN ('user', 'project')").fetchall()
assert user and project and all(hashlib.sha256(p.encode()).hexdigest() for p, _ in events)
""",
    "import sqlalchemy (Core)": "import sqlalchemy",
    LIBRARY_FLOOR: LIBRARY_FLOOR,
    "import core.store.db + init_db": "from core.store import db; db.init_db(db.get_engine())",
}
RAW_FLOOR = "raw sqlite3 read of whoami's rows"

Timed = tuple[float, float]  # median wall and median CPU seconds


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_s(argv: list[str], repeat: int, env: dict[str, str], expect: int = 0) -> Timed:
    """The median wall time and the median CPU time of `repeat` runs of argv; a run that does not exit with
    `expect` ends the benchmark."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _children_cpu_s()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu_s() - c0)
        if done.returncode != expect:
            raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}, not {expect}: "
                             f"{done.stderr.strip()[-500:]}")
    return statistics.median(walls), statistics.median(cpus)


def fresh_database(directory: Path) -> dict[str, str]:
    """The environment of a fresh SQLite database holding one admin (ada) and one project (p1); commands run in
    their own process (STILLROOM_DAEMON=off) unless a measurement turns the daemon on."""
    (directory / "run").mkdir(mode=0o700)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'stillroom.db'}",
           "STILLROOM_DATA_DIR": str(directory), "STILLROOM_TOKEN_FILE": str(directory / "token"),
           "STILLROOM_ADMIN_PASSWORD": "bench-password", "PYTHONPATH": str(REPO_ROOT),
           "XDG_RUNTIME_DIR": str(directory / "run"), "STILLROOM_DAEMON": "off"}
    env.pop("STILLROOM_TOKEN", None)
    for argv in (["init", "--admin", "ada"], ["--as", "ada", "projects", "create", "p1"]):
        median_s([*CLI, *argv], 1, env)
    return env


def through_daemon(env: dict[str, str], repeat: int) -> tuple[dict[str, str], Timed]:
    """The environment that sends commands to a started warm daemon, and the median time of the first command when
    no daemon runs (measured after stopping it each time; it starts one, which is then waited for, untimed)."""
    warm = {**env, "STILLROOM_DAEMON": "on"}
    walls, cpus = [], []
    for _ in range(repeat):
        median_s([*CLI, "daemon", "stop"], 1, warm)
        while _daemon_answers(warm):
            time.sleep(0.05)
        wall, cpu = median_s([*CLI, "--as", "ada", "whoami"], 1, warm)
        walls.append(wall)
        cpus.append(cpu)
        median_s([*CLI, "daemon", "start"], 1, warm)
    return warm, (statistics.median(walls), statistics.median(cpus))


def _daemon_answers(env: dict[str, str]) -> bool:
    done = subprocess.run([*CLI, "daemon", "status"], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    return done.stdout.startswith("Daemon pid")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _verdict(wall: float) -> str:
    return "ok" if wall <= BUDGET_S else "OVER BUDGET"


def help_row(label: str, timed: Timed, python: Timed, budget: bool) -> tuple[str, ...]:
    (wall, cpu) = timed
    return (label, _ms(wall), f"{wall / python[0]:.1f}x", _ms(cpu), f"{cpu / python[1]:.1f}x",
            f"< {BUDGET_S * 1000:.0f} ms" if budget else "", _verdict(wall) if budget else "")


def run_row(label: str, run: Timed, warm: Timed, help_: Timed, library: Timed, raw: Timed) -> tuple[str, ...]:
    return (label, _ms(help_[0]), _ms(run[0]), f"{run[0] / help_[0]:.1f}x", f"{run[0] / library[0]:.2f}x",
            f"{run[0] / raw[0]:.1f}x", _ms(warm[0]), f"{run[0] / warm[0]:.1f}x", f"{warm[0] / raw[0]:.1f}x",
            _ms(warm[1]), _verdict(warm[0]))


def _label(argv: list[str], expect: int) -> str:
    return f"stillroom {' '.join(argv)}" + (f" (refused, exit {expect})" if expect else "")


def _help_of(argv: list[str]) -> list[str]:
    """The argv of the command's own --help: its words without --as NAME and the arguments after the command."""
    words = argv[2:] if argv[:1] == ["--as"] else argv
    depth = 2 if words[0] in ("users", "jobs", "gate", "audit", "review") else 1
    return [*words[:depth], "--help"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs each: a smoke run, not a measurement.")
    parser.add_argument("--repeat", type=int, help="Runs per command; the median counts (default 9).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a command misses the budget.")
    args = parser.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 9)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-cli-") as tmp:
        env = fresh_database(Path(tmp))
        floors = {label: median_s([*PY, "-c", code], repeat, env) for label, code in FLOORS.items()}
        helps = [(a, median_s([*CLI, *a], repeat, env)) for a in HELP]
        opens = [(a, expect, median_s([*CLI, *_help_of(a)], repeat, env), median_s([*CLI, *a], repeat, env, expect))
                 for a, expect in OPENS_DATABASE]
        warm_env, first = through_daemon(env, repeat)
        warm = [median_s([*CLI, *a], repeat, warm_env, expect) for a, expect in OPENS_DATABASE]
        median_s([*CLI, "daemon", "stop"], 1, warm_env)
    load_after = os.getloadavg()

    python = floors["python -c pass"]
    header = ("command", "wall", "x python", "cpu", "x python", "budget", "verdict")
    _seed.print_table(
        f"CLI start-up: median of {repeat} runs each, as subprocesses; ratios against `python -c pass` "
        f"({_ms(python[0])}) measured in the same run",
        [header, *[help_row(f"floor: {label}", timed, python, False) for label, timed in floors.items()],
         *[help_row(f"stillroom {' '.join(a)}", s, python, True) for a, s in helps]])
    print()
    library, raw = floors[LIBRARY_FLOOR], floors[RAW_FLOOR]
    _seed.print_table(
        "Commands that open the database (a fresh SQLite file: one admin, one project), each beside its --help; "
        f"own process: STILLROOM_DAEMON=off; x lib: against `{LIBRARY_FLOOR}`, x raw: against the raw sqlite3 read; "
        "warm: through the started daemon (the default), x warm: own process / warm; verdict on warm",
        [("command", "its --help", "own proc", "x help", "x lib", "x raw", "warm", "x warm", "warm x raw",
          "client cpu", "verdict"),
         *[run_row(_label(a, expect), run, w, h, library, raw)
           for (a, expect, h, run), w in zip(opens, warm, strict=True)]])
    worst_help = max(s[0] for _, s in helps)
    walls = [run[0] for *_, run in opens]
    warm_walls = [w[0] for w in warm]
    print(f"\nslowest --help {_ms(worst_help)}; commands that open the database take {_ms(min(warm_walls))} to "
          f"{_ms(max(warm_walls))} through the warm daemon, {_ms(min(walls))} to {_ms(max(walls))} in their own "
          f"process, against a library floor of {_ms(library[0])} (SQLAlchemy Core alone "
          f"{_ms(floors['import sqlalchemy (Core)'][0])}), a raw sqlite3 read of {_ms(raw[0])} and the floor of "
          f"core.store.db + init_db of {_ms(floors['import core.store.db + init_db'][0])}; the first command with no "
          f"daemon running (it starts one): {_ms(first[0])}")
    print(f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores")
    return 1 if args.strict and max(worst_help, *warm_walls) > BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
