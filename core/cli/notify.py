"""Notification commands: a person's inbox, and the admin's webhook subscriptions and their delivery log."""

from __future__ import annotations

import click

from core.access import projects
from core.cli.base import _actor, _engine, _session, _table, cli
from core.notify import delivery, inbox, webhooks
from core.notify.rules import Kind
from core.store.config import get_settings


@cli.group("inbox", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Read items too, not only unread ones.")
@click.pass_context
def inbox_group(ctx: click.Context, show_all: bool) -> None:
    """Your notifications, newest first: work that became yours, each with the app link that does it."""
    if ctx.invoked_subcommand is not None:
        return
    with _session() as session:
        me = _actor(session)
        items = inbox.inbox(session, viewer=me, unread_only=not show_all)
        unread = inbox.unread_count(session, viewer=me)
    _table(["ID", "WHEN", "READ", "TEXT", "LINK"],
           [(i.id, f"{i.created_at:%Y-%m-%d %H:%M}", "yes" if i.read else "", i.text, i.link.query) for i in items])
    click.echo(f"{unread} unread.")


@inbox_group.command("read")
@click.argument("notification_id", type=int, required=False)
@click.option("--all", "every", is_flag=True, help="Mark every unread notification read.")
def inbox_read(notification_id: int | None, every: bool) -> None:
    """Mark one notification (or --all) read."""
    with _session() as session:
        me = _actor(session)
        if every:
            click.echo(f"{inbox.mark_all_read(session, viewer=me)} marked read.")
        elif notification_id is None:
            raise click.UsageError("name a notification ID, or pass --all.")
        else:
            inbox.mark_read(session, viewer=me, notification_id=notification_id)
            click.echo(f"Notification #{notification_id} marked read.")


@cli.group("webhooks")
def webhooks_group() -> None:
    """Webhooks (admins): Slack-compatible posts for notifications, to URLs on STILLROOM_WEBHOOK_URLS."""


@webhooks_group.command("add")
@click.argument("url")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in Kind]),
              help="A kind of event to post (repeat it); none: every kind.")
@click.option("--project", default=None, help="Only this project's events (default: every project's).")
def webhooks_add(url: str, kinds: tuple[str, ...], project: str | None) -> None:
    """Post notifications to URL, which must be on STILLROOM_WEBHOOK_URLS exactly."""
    with _session() as session:
        actor = _actor(session)
        scope = projects.get_project(session, project) if project else None
        row = webhooks.add(session, actor=actor, url=url, kinds=kinds, project=scope)
        click.echo(f"Webhook #{row.id} added: {row.shown} hears {', '.join(row.kinds)}.")


@webhooks_group.command("list")
def webhooks_list() -> None:
    """The active subscriptions (URLs shown by host and fingerprint only) and how their deliveries went."""
    with _session() as session:
        rows = webhooks.subscriptions(session, actor=_actor(session))
    _table(["ID", "URL", "KINDS", "PROJECT", "DELIVERED", "FAILED", "PENDING"],
           [(s.id, s.shown, ", ".join(s.kinds), s.project_id or "all", s.delivered, s.failed, s.pending)
            for s in rows])


@webhooks_group.command("remove")
@click.argument("subscription_id", type=int)
def webhooks_remove(subscription_id: int) -> None:
    """Stop a subscription; its delivery log stays."""
    with _session() as session:
        row = webhooks.remove(session, actor=_actor(session), subscription_id=subscription_id)
    click.echo(f"Webhook #{row.id} ({row.shown}) removed.")


@webhooks_group.command("deliver")
@click.option("--wait", "wait_s", default=0.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Keep retrying for up to this many seconds (the backoff is waited out).")
def webhooks_deliver(wait_s: float) -> None:
    """Post the deliveries that are due (e.g. from cron, for those a short-lived process left behind)."""
    engine = _engine()
    made = delivery.drain(engine, timeout_s=wait_s or get_settings().webhook_timeout_s)
    click.echo(f"{made} tr{'y' if made == 1 else 'ies'} made; {delivery.pending_count(engine)} left pending.")
