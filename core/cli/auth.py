"""CLI identity: ``stillroom login`` stores a personal API token for the OS user, ``logout`` revokes it.

The token file lives at ``$STILLROOM_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/stillroom/token`` (by default
``~/.config/stillroom/token``), readable by its owner only. ``STILLROOM_TOKEN`` in the environment takes
precedence over the file.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.cli.base import _actor, _session, cli, identity_source, lazy, token_path
from core.domain.errors import InvalidInput

if TYPE_CHECKING:  # the imports as mypy and import-linter read them; at run time each loads on first use
    from core.access import people, tokens
    from core.store import config
else:  # lazy: `stillroom whoami --help` loads neither SQLAlchemy nor pydantic
    people, tokens, config = lazy("core.access.people", "core.access.tokens", "core.store.config")


def _client() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def write_token(path: Path, secret: str) -> None:
    """Write the token so that only the OS user can read it (the folder too)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


@cli.command("login")
@click.option("--username", help="Your Stillroom username (default: --as, STILLROOM_USER, or your OS user name).")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.option("--name", "token_name", help="What the token is for (default: OS user@host).")
@click.pass_context
def login(ctx: click.Context, username: str | None, password_stdin: bool, token_name: str | None) -> None:
    """Prove who you are with your password once; store a personal API token that later commands act with."""
    username = username or ctx.find_root().obj.get("as") or config.get_settings().user or getpass.getuser()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password for {username}", hide_input=True)
    with _session() as session:
        user = people.authenticate(session, username=username, password=password, client=_client())
        made = tokens.create_cli_token(session, user=user, name=token_name or _client().removeprefix("cli:"))
    path = token_path()
    write_token(path, made.secret)
    click.echo(f"Logged in as {user.username}: token #{made.row.id} stored in {path} (readable by you only). "
               "Commands now act as you; `stillroom logout` revokes it.")


@cli.command("logout")
def logout() -> None:
    """Revoke the stored personal API token and delete its file."""
    path = token_path()
    secret = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if not secret:
        raise InvalidInput(f"no token is stored in {path}: nothing to log out of.", field="token")
    with _session() as session:
        tokens.revoke_cli_token(session, secret=secret)
    path.unlink()
    click.echo(f"Logged out: the token is revoked and {path} deleted.")


@cli.command("whoami")
def whoami() -> None:
    """The person commands act as, and how that was established."""
    with _session() as session:
        user = _actor(session)
    click.echo(f"{user.username} ({user.display_name}), {identity_source()}")
