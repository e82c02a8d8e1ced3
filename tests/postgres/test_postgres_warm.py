"""Issue 18: the warm daemon serves PostgreSQL installations too: its children open their own connections with the
driver the daemon preloaded, and answer exactly as a command in its own process does."""

from __future__ import annotations

from pathlib import Path

from test_postgres import pg, pg_url  # noqa: F401  (the cluster, and a fresh seeded schema on it)
from warm_helpers import make_env, seen, status, stillroom


def test_warm_commands_on_postgresql_answer_as_without_the_daemon(pg, pg_url, tmp_path: Path):  # noqa: F811
    env = {**make_env(tmp_path), "DATABASE_URL": pg_url}
    assert stillroom(env, "daemon", "start").returncode == 0
    try:
        for argv in (["--as", "sam", "whoami"], ["--as", "admin", "users", "list"], ["--as", "sam", "projects", "list"],
                     ["--as", "nobody", "whoami"], ["audit", "verify", "--no-files"]):
            cold, warm_run = stillroom(env, *argv, daemon=False), stillroom(env, *argv)
            assert seen(warm_run) == seen(cold), (argv, warm_run.stderr)
        assert status(env)["served"] == 5
        assert stillroom(env, "--as", "sam", "whoami").stdout.startswith("sam ")
    finally:
        stillroom(env, "daemon", "stop")
