"""``stillroom serve``: the shipped student over HTTP, behind the project's rollout stage; ``serve-token``: the
bearer tokens its clients send."""

from __future__ import annotations

import click

from core.access import tokens
from core.access.projects import require_role
from core.cli.base import _session, _table, _username, _viewable, cli
from core.domain.roles import Role
from core.serving import app as serving


@cli.command("serve")
@click.argument("project")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-concurrency", default=serving.DEFAULT_MAX_CONCURRENCY, show_default=True,
              type=click.IntRange(1, 100_000), help="Requests answered at once; more are refused with 503.")
@click.option("--max-chars", default=serving.DEFAULT_MAX_CHARS, show_default=True, type=click.IntRange(1),
              help="The longest text accepted.")
@click.option("--max-body-bytes", type=click.IntRange(64), default=None,
              help="Bodies larger than this get 413 unread [default: 8 x max-chars + 4096].")
@click.option("--read-timeout", default=serving.DEFAULT_READ_TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.05, 600), help="Seconds a client has to send its whole body (else 408).")
@click.option("--escalate-to", type=click.Choice(["teacher", "queue"]), default="teacher", show_default=True,
              help="Who answers must-escalate labels: the teacher, or a person's queue.")
@click.option("--workers", type=click.IntRange(1, 512), default=None,
              help="Worker processes on the port, each with its own models [default: the number of cores].")
@click.option("--micro-batch", default=serving.DEFAULT_MICRO_BATCH, show_default=True, type=click.IntRange(1, 1024),
              help="Most requests a transformer student (or a local teacher) answers in one call; 1 calls the "
                   "model once per request. An n-gram student always answers each request inline.")
@click.option("--batch-wait-ms", default=serving.DEFAULT_BATCH_WAIT_MS, show_default=True,
              type=click.FloatRange(0, 1000), help="How long the first request of a batch waits for company.")
@click.option("--refresh-seconds", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="How often each worker re-reads the rollout stage and the serving tokens (a revoked token "
                   "stops working within this time).")
@click.option("--no-auth", is_flag=True,
              help="Accept requests without a serving token. Local development only: anyone who reaches the port "
                   "can then add traffic to the log that rollout advances are judged on.")
def serve(project: str, host: str, port: int, max_concurrency: int, max_chars: int, max_body_bytes: int | None,
          read_timeout: float, escalate_to: str, workers: int | None, micro_batch: int, batch_wait_ms: float,
          refresh_seconds: float, no_auth: bool) -> None:
    """Serve PROJECT's shipped student at its rollout stage (operator only; refused when the rollout is off)."""
    from core.serving import worker  # lazy: loads the HTTP server, which the other commands never need

    with _session() as session:
        actor, proj = _viewable(session, project)
        require_role(session, actor=actor, project=proj, role=Role.OPERATOR, doing="serve the student")
        state, _, run = serving.check_servable(session, project=proj, require_token=not no_auth)
    options = worker.ServeOptions(
        project_id=proj.id, workers=workers or worker.default_workers(), escalate_to=escalate_to,
        max_concurrency=max_concurrency, max_chars=max_chars, max_body_bytes=max_body_bytes,
        read_timeout_s=read_timeout, require_token=not no_auth, refresh_s=refresh_seconds, micro_batch=micro_batch,
        batch_wait_ms=batch_wait_ms)
    if no_auth:
        click.echo("WARNING: --no-auth: every client that reaches this port is served and logged as traffic "
                   "without a token. Use it for local development only.", err=True)
    click.echo(f"serving {proj.name!r} at stage {state.stage} (student of training run #{run.id}, {run.family}) "
               f"on http://{host}:{port} with {options.workers} worker process(es)", err=True)
    worker.run(options, host=host, port=port)


@cli.group("serve-token")
def serve_token_group() -> None:
    """The bearer tokens the clients of `stillroom serve` send (operator; stored hashed, audited)."""


@serve_token_group.command("create")
@click.argument("project")
@click.argument("name")
def serve_token_create(project: str, name: str) -> None:
    """Create a serving token for PROJECT named NAME (e.g. the client that uses it); printed once."""
    with _session() as session:
        actor, proj = _viewable(session, project)
        made = tokens.create_serve_token(session, actor=actor, project=proj, name=name)
        click.echo(f"serving token #{made.row.id} {made.row.name!r} for {proj.name!r}; it is shown only now, "
                   "send it as 'Authorization: Bearer TOKEN':", err=True)
        click.echo(made.secret)


@serve_token_group.command("list")
@click.argument("project")
def serve_token_list(project: str) -> None:
    """PROJECT's serving tokens (prefix only; the secrets are not stored)."""
    with _session() as session:
        actor, proj = _viewable(session, project)
        rows = tokens.serve_tokens_for(session, actor=actor, project=proj)
        _table(["id", "name", "prefix", "created by", "created", "revoked"],
               [[t.id, t.name, t.prefix + "...", _username(session, t.user_id),
                 t.created_at.isoformat(timespec="seconds"),
                 t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else ""] for t in rows])


@serve_token_group.command("revoke")
@click.argument("project")
@click.argument("token_id", type=int)
def serve_token_revoke(project: str, token_id: int) -> None:
    """Revoke PROJECT's serving token TOKEN_ID (a running service stops accepting it within seconds)."""
    with _session() as session:
        actor, proj = _viewable(session, project)
        row = tokens.revoke_serve_token(session, actor=actor, project=proj, token_id=token_id)
        click.echo(f"revoked serving token #{row.id} {row.name!r}.")
