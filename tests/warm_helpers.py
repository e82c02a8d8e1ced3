"""Running `stillroom` with the warm daemon on in a test's own runtime directory (tests/cli/test_warm.py,
tests/postgres/test_postgres_warm.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def make_env(tmp_path: Path, name: str = "db", **extra: str) -> dict[str, str]:
    """The environment of a database under tmp_path with the daemon on in tmp_path's own runtime directory; a
    daemon a failed test leaves behind exits after 120 s with nothing to do."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run"), "DATABASE_URL": f"sqlite:///{tmp_path / name}.db",
           "STILLROOM_DATA_DIR": str(tmp_path / name), "STILLROOM_DAEMON": "on", "STILLROOM_DAEMON_IDLE_S": "120",
           **extra}
    env.pop("STILLROOM_USER", None)
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def stillroom(env: dict[str, str], *argv: str, stdin: str | None = None, daemon: bool = True,
              pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**env, "STILLROOM_DAEMON": "on" if daemon else "off"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "core.cli", *argv], input=stdin, capture_output=True, text=True,
                          cwd=pythonpath or REPO, env=env, timeout=120)


def status(env: dict[str, str], pythonpath: Path | None = None) -> dict | None:
    got = subprocess.run([sys.executable, "-c", "import json, os; from core.cli import warm; "
                          "print(json.dumps(warm.ask(os.environ, 'status')))"],
                         capture_output=True, text=True, cwd=pythonpath or REPO, timeout=60,
                         env={**env, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})})
    reply = json.loads(got.stdout)
    return reply["status"] if reply else None


def seen(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    """What a person sees, less the record's generation time."""
    return done.returncode, re.sub(r"Generated \S+", "Generated (time)", done.stdout), done.stderr


def wait_until(check, what: str, limit_s: float = 60):
    deadline = time.monotonic() + limit_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return got


