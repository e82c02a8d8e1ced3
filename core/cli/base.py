"""The root ``stillroom`` group and the helpers every command module shares."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from core.domain.errors import AuthenticationFailed, InvalidInput, StillroomError

if TYPE_CHECKING:  # for mypy and the import contracts; at run time each helper imports what it uses
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from core.store.models import Project, User

# --------------------------------------------------------------------------- edge


# Command name -> (the module of core.cli that registers it, its one-line help). Modules load on first use, so
# `stillroom audit verify` pays for neither pandas nor torch, and `stillroom --help` lists every command from this
# table without loading any (tests/cli/test_cli_startup.py keeps each line equal to its command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("governance", "The audit hash chain."),
    "daemon": ("daemon", "The warm background process that starts database commands fast: status, start and stop."),
    "data": ("data", "Step 3: production inputs, deduplication, coverage and the holdout."),
    "decide": ("review", "Record the sponsor's ship, iterate or kill for PROJECT's open round."),
    "demo": ("governance", "Seed the demo (idempotent): people, projects, the routing project's tickets and "
                           "holdout, and a job that trains the demo teacher and labels the tickets with it."),
    "eval": ("evaluate", "Step 5: score a student on the locked holdout against the gate (driver only)."),
    "inbox": ("notify", "Your notifications, newest first: work that became yours, each with the app link that does "
                        "it."),
    "gate": ("governance", "Step 2: the success gate, locked before building."),
    "init": ("governance", "Create or upgrade the database, and optionally bootstrap the first admin."),
    "jobs": ("jobs", "Long work (teacher runs, training) and its progress."),
    "login": ("auth", "Prove who you are with your password once; store a personal API token that later commands "
                      "act with."),
    "logout": ("auth", "Revoke the stored personal API token and delete its file."),
    "monitor": ("monitor", "After launch: live traffic, drift against the training data, and re-distillation."),
    "projects": ("governance", "Create and list projects."),
    "qualify": ("governance", "Step 1: qualify the trigger."),
    "record": ("review", "Export PROJECT's decision record as Markdown or one self-contained HTML file."),
    "review": ("review", "Step 5: review the disagreements, agree, sign off and choose the fallback threshold "
                         "(validators)."),
    "roles": ("governance", "Assign and remove project roles (admins only)."),
    "rollout": ("monitor", "After launch: roll the shipped student out in stages, shadow first (operators)."),
    "serve": ("serve", "Serve PROJECT's shipped student at its rollout stage (operator only; refused when the "
                       "rollout is off)."),
    "serve-token": ("serve", "The bearer tokens the clients of `stillroom serve` send (operator; stored hashed, "
                             "audited)."),
    "teacher": ("teacher", "Step 3: the teacher's outputs on a dataset, combined and filtered (driver only)."),
    "train": ("train", "Step 4: distil students from the teacher's outputs (driver only, under a locked gate)."),
    "users": ("governance", "Manage people (admins only)."),
    "webhooks": ("notify", "Webhooks (admins): Slack-compatible posts for notifications, to URLs on "
                           "STILLROOM_WEBHOOK_URLS."),
    "worker": ("worker", "Run queued jobs handed to workers, on any host that reaches the database and the "
                         "artifact store."),
    "whoami": ("auth", "The person commands act as, and how that was established."),
}
LAZY_COMMANDS = {name: module for name, (module, _) in COMMANDS.items()}


class LazyModule:
    """A module that a command module names at its top and loads on its first use. Command modules import
    their core modules (and YAML) with `lazy`, so that `stillroom audit --help` loads neither SQLAlchemy nor the
    table models (about 0.5 s) nor pandas; mypy and import-linter read the real imports under TYPE_CHECKING
    beside them."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        # By name, on purpose, like the command loader below (tests/store/test_jobs_kinds.py).
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<core module {self._name}, loaded on first use>"


def lazy(*names: str) -> tuple[LazyModule, ...]:
    """One LazyModule for each dotted module name, in order."""
    return tuple(LazyModule(name) for name in names)


def load_commands(names: Sequence[str]) -> None:
    """Load these commands' modules and every core module they (and this module) name with `lazy`, skipping those
    that cannot load here: the warm daemon's preload (core.cli.daemon_loop)."""
    for name in names:
        # By name, on purpose, like the command loader below (tests/store/test_jobs_kinds.py).
        load_lazy_names(importlib.import_module(f"core.cli.{LAZY_COMMANDS[name]}"))
    load_lazy_names(sys.modules[__name__])


def load_lazy_names(module: ModuleType) -> None:
    """Load every module that `module` names with `lazy` now, skipping those that cannot load here (the warm
    daemon's preload, core.cli.daemon_loop, which keeps the model stack out)."""
    for value in list(vars(module).values()):
        if isinstance(value, LazyModule):
            try:
                importlib.import_module(value._name)
            except ImportError:
                continue


if TYPE_CHECKING:
    from core.access import people, projects, tokens
    from core.store import config, db
else:
    people, projects, tokens, config, db = lazy("core.access.people", "core.access.projects", "core.access.tokens",
                                                "core.store.config", "core.store.db")


def _database_unusable(exc: Exception) -> bool:
    """Whether exc is SQLAlchemy's OperationalError; checked without importing SQLAlchemy, which a command that
    never opened the database has not loaded (and then cannot have raised)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.OperationalError)


class StillroomGroup(click.Group):
    """Turns Stillroom's named errors into one sentence and an exit code; loads command modules lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in LAZY_COMMANDS:
            # By name, on purpose: the one import of a project module by string in core
            # (tests/store/test_jobs_kinds.py).
            importlib.import_module(f"core.cli.{LAZY_COMMANDS[name]}")
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, each line from COMMANDS: `stillroom --help` loads no command module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._stand_in(ctx, name).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _stand_in(self, ctx: click.Context, name: str) -> click.Command:
        """The command itself when it is loaded, else one that only carries its help line from COMMANDS."""
        if name in self.commands or name not in COMMANDS:
            return self.get_command(ctx, name) or click.Command(name)
        return click.Command(name, help=COMMANDS[name][1])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StillroomError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if not _database_unusable(exc):
                raise
            url = db.get_engine().url.render_as_string(hide_password=True)
            click.echo(f"error: the database at {url} could not be used ({getattr(exc, 'orig', exc)}).", err=True)
            ctx.exit(1)


def _engine() -> Engine:
    return db.init_db(db.get_engine())


@contextmanager
def _session() -> Iterator[Session]:
    with db.session_scope(_engine()) as session:
        yield session


def token_path() -> Path:
    """Where ``stillroom login`` keeps the personal API token."""
    configured = config.get_settings().token_file
    if configured is not None:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stillroom" / "token"


def _stored_token() -> tuple[str, str] | None:
    """(the CLI token, where it came from): STILLROOM_TOKEN, else the token file; None when neither holds one."""
    if config.get_settings().token:
        return config.get_settings().token.strip(), "STILLROOM_TOKEN"
    path = token_path()
    if not path.is_file():
        return None
    if path.stat().st_mode & 0o077:
        raise AuthenticationFailed(f"{path} can be read by other users, so its token is not trusted: run "
                                   f"`chmod 600 {path}` or `stillroom login` again.")
    secret = path.read_text(encoding="utf-8").strip()
    return (secret, str(path)) if secret else None


def identity_source() -> str:
    """How the CLI knows who is acting: a token, or a self-declared name."""
    stored = _stored_token()
    return f"by the personal API token in {stored[1]}" if stored else "by --as or STILLROOM_USER (no token)"


def _actor(session: Session) -> User:
    """The person the CLI acts as: the owner of the personal API token (STILLROOM_TOKEN or the file written by
    `stillroom login`); without a token, the name given by --as or STILLROOM_USER, unless the setting
    STILLROOM_CLI_REQUIRE_TOKEN demands a token."""
    name = click.get_current_context().find_root().obj.get("as") or config.get_settings().user
    stored = _stored_token()
    if stored is not None:
        user = tokens.user_for_token(session, secret=stored[0])
        if name and name.strip() != user.username:
            raise AuthenticationFailed(f"the token in {stored[1]} belongs to {user.username!r}, not {name!r}: drop "
                                       f"--as (and STILLROOM_USER), or run `stillroom login` as {name}.")
        return user
    if config.get_settings().cli_require_token:
        raise AuthenticationFailed("this installation requires a personal API token (STILLROOM_CLI_REQUIRE_TOKEN "
                                   "is on): run `stillroom login`, or set STILLROOM_TOKEN.")
    if not name:
        raise InvalidInput("no person to act as: pass --as NAME or set STILLROOM_USER.", field="as")
    user = people.get_user(session, name)
    if not user.is_active:
        raise AuthenticationFailed(
            f"the account {user.username!r} is deactivated: ask an admin to reactivate it."
        )
    return user


def _viewable(session: Session, name: str) -> tuple[User, Project]:
    """The acting person and a project they may look at."""
    actor = _actor(session)
    project = projects.get_project(session, name)
    projects.can_view(session, user=actor, project=project)
    return actor, project


def load_mapping(path: str) -> dict:
    """A YAML or JSON file (by extension) holding a mapping, or InvalidInput naming the fix."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InvalidInput(f"{path}: unknown file type; give a .yaml, .yml or .json file.", field="file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file; check the path.", field="file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc}); give a readable UTF-8 file.", field="file") from None
    data = _parse_json(path, text) if p.suffix.lower() == ".json" else _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{path} holds a {type(data).__name__}, not a mapping: write one 'field: value' per line.",
            field="file",
        )
    return data


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}): fix the syntax there.",
            field="file",
        ) from None


def _parse_yaml(path: str, text: str) -> Any:
    import yaml  # lazy: only commands that read a file need a YAML parser

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise InvalidInput(f"{path} is not valid YAML{where} ({problem}): fix the syntax there.",
                           field="file") from None


def _new_password(env_var: str, *, from_stdin: bool, for_whom: str) -> str:
    """A new password from stdin, the environment, or a hidden prompt; never echoed."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(env_var):
        return os.environ[env_var]
    return click.prompt(f"Password for {for_whom}", hide_input=True, confirmation_prompt=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _username(session: Session, user_id: int) -> str:
    user = people.account(session, user_id)
    return user.username if user else f"#{user_id}"


# --------------------------------------------------------------------------- root


@click.group(cls=StillroomGroup)
@click.option("--as", "as_name", metavar="NAME",
              help="The person to act as (default: the STILLROOM_USER setting).")
@click.pass_context
def cli(ctx: click.Context, as_name: str | None) -> None:
    """Stillroom: the system of record for model-distillation projects."""
    ctx.obj = {"as": as_name}
