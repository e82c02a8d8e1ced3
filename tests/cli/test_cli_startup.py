"""Issue 18: commands that load no model start fast because they import only what they use.

No wall-clock asserts: each test runs commands in a fresh interpreter (a subprocess running them in-process one
after another) and reads sys.modules after each, so the first command that pulls in a slow library is named.
`--help` must load no database layer at all (SQLAlchemy, SQLModel, pydantic: about 0.5 s); a command that opens
the database must still load no model stack (torch, transformers, scikit-learn, scipy, pandas).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest

from core.cli import base
from core.cli.base import COMMANDS, LazyModule, cli

REPO = Path(__file__).resolve().parents[2]
MODEL_STACK = ("torch", "transformers", "sklearn", "scipy", "pandas")
DATABASE_LAYER = ("sqlalchemy", "sqlmodel", "pydantic", "alembic")
# The commands that load no model (issue 18), as groups or commands of `stillroom`.
NO_MODEL = ("audit", "gate", "review", "decide", "record", "users", "whoami", "jobs", "qualify", "projects",
            "roles", "init", "login", "logout")

# Runs each argv of the JSON list in sys.argv[1] through the CLI in this one process and prints, after each, a
# marked JSON line: the argv, its exit code (or the exception that escaped) and every module loaded so far.
RUNNER = """
import json, sys
from core.cli import cli
for argv in json.loads(sys.argv[1]):
    try:
        code = cli.main(argv, prog_name="stillroom", standalone_mode=False) or 0
    except Exception as exc:
        code = type(exc).__name__
    print("@modules " + json.dumps([argv, code, sorted(sys.modules)]))
"""


def run_in_one_process(argvs: list[list[str]], env: dict[str, str] | None = None) -> list[tuple[list, object, set]]:
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(argvs)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line.removeprefix("@modules ")) for line in done.stdout.splitlines()
             if line.startswith("@modules ")]
    assert len(lines) == len(argvs), done.stdout[-3000:] + done.stderr[-3000:]
    return [(argv, code, set(modules)) for argv, code, modules in lines]


def first_to_load(results: list[tuple[list, object, set]], forbidden: tuple[str, ...]) -> list[str]:
    """'argv: module' for the first command after which each forbidden module is loaded."""
    seen: set[str] = set()
    found = []
    for argv, _code, modules in results:
        for name in sorted({m.split(".")[0] for m in modules} & set(forbidden) - seen):
            found.append(f"stillroom {' '.join(argv)}: {name}")
            seen.add(name)
    return found


def help_argvs() -> list[list[str]]:
    """`--help` of the root, of each no-model command, and of each of their subcommands."""
    ctx = click.Context(cli)
    argvs = [["--help"]]
    for name in NO_MODEL:
        argvs.append([name, "--help"])
        command = cli.get_command(ctx, name)
        stack = [([name], command)]
        while stack:
            path, group = stack.pop()
            for sub, child in getattr(group, "commands", {}).items():
                argvs.append([*path, sub, "--help"])
                stack.append(([*path, sub], child))
    return argvs


def test_the_help_of_every_no_model_command_loads_no_database_layer_and_no_model_stack():
    argvs = help_argvs()
    assert len(argvs) > 40, argvs  # every subcommand, not just the groups
    results = run_in_one_process(argvs)
    assert [code for _, code, _ in results] == [0] * len(argvs)
    assert first_to_load(results, MODEL_STACK + DATABASE_LAYER) == []


def test_stillroom_help_loads_no_command_module():
    [(_, code, modules)] = run_in_one_process([["--help"]])
    assert code == 0
    assert sorted(m for m in modules if m.startswith("core.cli.")) == ["core.cli.base"]


def fresh_database_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'stillroom.db'}", "STILLROOM_DATA_DIR": str(tmp_path),
            "STILLROOM_ADMIN_PASSWORD": "startup-test-password", "STILLROOM_TOKEN_FILE": str(tmp_path / "token"),
            "STILLROOM_TOKEN": "", "STILLROOM_CLI_REQUIRE_TOKEN": "false"}


SETUP = [["init", "--admin", "ada"], ["--as", "ada", "projects", "create", "p1"]]


def test_commands_that_open_the_database_load_no_model_stack(tmp_path: Path):
    """Each no-model command really runs against a fresh database (a refusal, such as an unqualified project,
    still runs the command's imports)."""
    argvs = [*SETUP, ["--as", "ada", "whoami"], ["--as", "ada", "users", "list"], ["--as", "ada", "projects", "list"],
             ["--as", "ada", "roles", "list", "p1"], ["--as", "ada", "jobs", "list", "p1"],
             ["--as", "ada", "qualify", "show", "p1"], ["--as", "ada", "gate", "history", "p1"],
             ["--as", "ada", "gate", "show", "p1"], ["--as", "ada", "audit", "log"],
             ["audit", "verify", "--no-files"]]
    results = run_in_one_process(argvs, fresh_database_env(tmp_path))
    codes = {" ".join(argv): code for argv, code, _ in results}
    assert codes["init --admin ada"] == 0 and codes["--as ada whoami"] == 0 and codes["audit verify --no-files"] == 0
    assert codes["--as ada gate show p1"] == 2  # refused (no gate yet) after its imports ran
    assert first_to_load(results, MODEL_STACK) == []


READS = [["--as", "ada", "whoami"], ["--as", "ada", "users", "list"], ["--as", "ada", "jobs", "list", "p1"],
         ["--as", "ada", "gate", "history", "p1"], ["--as", "ada", "record", "p1"], ["audit", "verify", "--no-files"]]


def test_commands_on_a_database_at_head_do_not_load_alembic(tmp_path: Path):
    """Issue 18: at HEAD_REVISION start-up is one query; Alembic (and its migration scripts) is not imported. The
    same commands on a database that is not yet at HEAD do load it, so the check can fail."""
    env = fresh_database_env(tmp_path)
    assert [code for _, code, _ in run_in_one_process(SETUP, env)] == [0, 0]
    results = run_in_one_process(READS, env)
    assert [code for _, code, _ in results] == [0] * len(READS)
    assert first_to_load(results, ("alembic",)) == []

    elsewhere = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}  # no schema yet: migrated first
    [(_, code, modules)] = run_in_one_process([["--as", "ada", "whoami"]], elsewhere)
    assert code == 2  # migrated, then refused: no such person
    assert "alembic" in {m.split(".")[0] for m in modules}


def test_a_database_made_by_a_newer_stillroom_is_one_sentence_and_exit_1(tmp_path: Path):
    env = fresh_database_env(tmp_path)
    assert [code for _, code, _ in run_in_one_process(SETUP[:1], env)] == [0]
    with sqlite3.connect(tmp_path / "stillroom.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    done = subprocess.run([sys.executable, "-m", "core.cli", "--as", "ada", "whoami"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **env}, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    said = done.stderr.strip()
    assert said.startswith(f"error: the database at {env['DATABASE_URL']} is at schema revision '0099'")
    assert said.endswith("nothing was changed.") and "\n" not in said


def test_review_decide_and_record_load_no_model(tmp_path: Path):
    """They read evaluation reports and predictions, which core keeps in pandas (so pandas loads), but never
    torch, transformers, scikit-learn or scipy."""
    argvs = [*SETUP, ["--as", "ada", "record", "p1"], ["--as", "ada", "decide", "p1", "--decision", "kill",
                                                       "--rationale", "r"], ["--as", "ada", "review", "kappa", "1"]]
    results = run_in_one_process(argvs, fresh_database_env(tmp_path))
    assert [code for _, code, _ in results] == [0, 0, 0, 3, 2]  # written; refused (no sponsor); no evaluation
    assert first_to_load(results, tuple(m for m in MODEL_STACK if m != "pandas")) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_static_help_table_says_what_each_command_says(name: str):
    """`stillroom --help` reads COMMANDS instead of the commands, so each line must equal the command's help, and
    the command must come from the module the table names."""
    module, short_help = COMMANDS[name]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.callback is not None
    assert command.callback.__module__ == f"core.cli.{module}"
    assert short_help == command.get_short_help_str(limit=sys.maxsize)


def test_the_root_help_lists_exactly_what_clicks_own_listing_would():
    ctx = click.Context(cli, info_name="stillroom")
    ours, clicks = click.HelpFormatter(), click.HelpFormatter()
    cli.format_commands(ctx, ours)
    click.Group.format_commands(cli, ctx, clicks)  # loads every command module and asks each command
    assert ours.getvalue() == clicks.getvalue()
    assert {name for name in COMMANDS} == set(cli.commands)  # no command registered outside the table


def lazy_bindings(path: Path) -> dict[str, str]:
    """name -> module, for what `if TYPE_CHECKING:` imports in a CLI module (what mypy and import-linter read)."""
    bindings = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom):
                    for alias in imp.names:
                        bindings[alias.asname or alias.name] = f"{imp.module}.{alias.name}"
                elif isinstance(imp, ast.Import):
                    bindings.update({a.asname or a.name: a.name for a in imp.names})
    return bindings


@pytest.mark.parametrize("module", sorted({m for m, _ in COMMANDS.values()} | {"base"}))
def test_each_lazy_module_is_the_module_its_type_checking_import_names(module: str):
    """A lazy module is named twice (its import for mypy, its string for run time): they must agree, and the
    string must import."""
    loaded = importlib.import_module(f"core.cli.{module}")
    bindings = lazy_bindings(REPO / "core" / "cli" / f"{module}.py")
    lazies = {name: value for name, value in vars(loaded).items() if isinstance(value, LazyModule)}
    for name, value in lazies.items():
        assert bindings.get(name) == value._name, f"core.cli.{module}.{name} loads {value._name}"
        importlib.import_module(value._name)
    assert module != "governance" or len(lazies) >= 10


def test_a_lazy_module_loads_on_first_use_and_then_answers_like_the_module():
    (proxy,) = base.lazy("core.domain.hashing")
    from core.domain import hashing

    assert proxy.canonical_json is hashing.canonical_json
    with pytest.raises(AttributeError):
        proxy.no_such_name  # noqa: B018


def test_a_database_that_cannot_be_opened_is_still_one_sentence_and_exit_1(tmp_path: Path):
    """The CLI recognises SQLAlchemy's OperationalError without importing SQLAlchemy up front."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}"}  # a folder: SQLite cannot open it
    done = subprocess.run([sys.executable, "-m", "core.cli", "--as", "ada", "whoami"], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 1
    said = f"error: the database at sqlite:///{tmp_path} could not be used (unable to open database file)."
    assert done.stderr.strip() == said
