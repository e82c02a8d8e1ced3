"""`stillroom daemon`: the warm background process that starts database commands fast (core.cli.warm)."""

from __future__ import annotations

import os
import time

import click

from core.cli import warm
from core.cli.base import cli


def _settings() -> warm.Settings:
    try:
        return warm.settings(os.environ)
    except warm.SettingError as exc:
        raise click.UsageError(str(exc)) from None


@cli.group("daemon")
def daemon_group() -> None:
    """The warm background process that starts database commands fast: status, start and stop."""


@daemon_group.command("status")
def daemon_status() -> None:
    """Whether this installation's daemon runs, since when, and how many commands it ran."""
    on = _settings().enabled
    got = warm.ask(os.environ, "status")
    status = got.get("status") if got else None
    if not isinstance(status, dict):
        click.echo(f"No daemon is running for this installation ({warm.SWITCH} is {'on' if on else 'off'}; "
                   f"socket {warm.socket_path(os.environ)}).")
        return
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(status["started"])))
    click.echo(f"Daemon pid {status['pid']} running since {since}: {status['served']} commands run, "
               f"{status['running']} running now; it exits after {float(status['idle_s']):g} s with nothing to do.")
    click.echo(f"Socket {status['socket']}; code {status['core']}.")
    if not on:
        click.echo(f"{warm.SWITCH} is off here, so commands run without it.")


@daemon_group.command("start")
def daemon_start() -> None:
    """Start the daemon now (commands start it by themselves when it is not running) and wait until it answers."""
    settings = _settings()
    if not warm.SUPPORTED:
        raise click.UsageError("the warm daemon needs Linux (pidfds and SO_PEERCRED); commands run without it here.")
    if not settings.enabled:
        raise click.UsageError(f"{warm.SWITCH} is off: unset it (or set it to on) to use the daemon.")
    problem = warm.private_dir(warm.runtime_dir(os.environ))
    if problem is not None:
        raise click.UsageError(f"the daemon cannot start: {problem}.")
    if warm.ask(os.environ, "status") is None:
        warm.start(warm.socket_path(os.environ))
    deadline = time.monotonic() + 60
    while (got := warm.ask(os.environ, "status")) is None:
        if time.monotonic() > deadline:
            raise click.ClickException("the daemon did not answer within 60 s; commands run without it.")
        time.sleep(0.05)
    click.echo(f"Daemon pid {got['status']['pid']} is ready.")  # type: ignore[index]


@daemon_group.command("stop")
def daemon_stop() -> None:
    """Stop the daemon: it takes no more commands and exits when the running ones have ended."""
    got = warm.ask(os.environ, "stop")
    if got is None:
        click.echo("No daemon was running.")
    else:
        click.echo(f"Stopped the daemon ({got.get('running', 0)} commands still running end on their own).")
