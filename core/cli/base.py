"""The root ``stillroom`` group and the helpers every command module shares."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from core.access import people, projects, tokens
from core.domain.errors import AuthenticationFailed, InvalidInput, StillroomError
from core.store.config import get_settings
from core.store.db import get_engine, init_db, session_scope
from core.store.models import Project, User

# --------------------------------------------------------------------------- edge


# Command name -> the module of core.cli that registers it. Modules load on first use,
# so `stillroom audit verify` does not pay for pandas, torch or scipy.
LAZY_COMMANDS = {
    **dict.fromkeys(("init", "demo", "users", "projects", "roles", "qualify", "gate", "audit"), "governance"),
    "jobs": "jobs", "data": "data", "teacher": "teacher", "train": "train", "eval": "evaluate",
    "review": "review", "decide": "review", "record": "review", "serve": "serve", "serve-token": "serve",
    "rollout": "monitor", "monitor": "monitor", "login": "auth", "logout": "auth", "whoami": "auth",
    "inbox": "notify", "webhooks": "notify",
}


class StillroomGroup(click.Group):
    """Turns Stillroom's named errors into one sentence and an exit code; loads command modules lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in LAZY_COMMANDS:
            # By name, on purpose: the one import of a project module by string in core
            # (tests/store/test_jobs_kinds.py).
            importlib.import_module(f"core.cli.{LAZY_COMMANDS[name]}")
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StillroomError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OperationalError as exc:
            url = get_engine().url.render_as_string(hide_password=True)
            click.echo(f"error: the database at {url} could not be used ({exc.orig}).", err=True)
            ctx.exit(1)


def _engine() -> Engine:
    return init_db(get_engine())


@contextmanager
def _session() -> Iterator[Session]:
    with session_scope(_engine()) as session:
        yield session


def token_path() -> Path:
    """Where ``stillroom login`` keeps the personal API token."""
    configured = get_settings().token_file
    if configured is not None:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stillroom" / "token"


def _stored_token() -> tuple[str, str] | None:
    """(the CLI token, where it came from): STILLROOM_TOKEN, else the token file; None when neither holds one."""
    if get_settings().token:
        return get_settings().token.strip(), "STILLROOM_TOKEN"
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
    name = click.get_current_context().find_root().obj.get("as") or get_settings().user
    stored = _stored_token()
    if stored is not None:
        user = tokens.user_for_token(session, secret=stored[0])
        if name and name.strip() != user.username:
            raise AuthenticationFailed(f"the token in {stored[1]} belongs to {user.username!r}, not {name!r}: drop "
                                       f"--as (and STILLROOM_USER), or run `stillroom login` as {name}.")
        return user
    if get_settings().cli_require_token:
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
