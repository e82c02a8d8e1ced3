"""``stillroom serve``: the shipped student over HTTP, behind the project's rollout stage."""

from __future__ import annotations

import click

from core.cli.base import _session, _viewable, cli
from core.governance.projects import require_role
from core.models import Role
from core.serving import app as serving


@cli.command("serve")
@click.argument("project")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-concurrency", default=serving.DEFAULT_MAX_CONCURRENCY, show_default=True,
              type=click.IntRange(1, 100_000), help="Requests answered at once; more are refused with 503.")
@click.option("--max-chars", default=serving.DEFAULT_MAX_CHARS, show_default=True, type=click.IntRange(1),
              help="The longest text accepted.")
@click.option("--escalate-to", type=click.Choice(["teacher", "queue"]), default="teacher", show_default=True,
              help="Who answers must-escalate labels: the teacher, or a person's queue.")
def serve(project: str, host: str, port: int, max_concurrency: int, max_chars: int, escalate_to: str) -> None:
    """Serve PROJECT's shipped student at its rollout stage (operator only; refused when the rollout is off)."""
    import uvicorn

    with _session() as session:
        actor, proj = _viewable(session, project)
        require_role(session, actor=actor, project=proj, role=Role.OPERATOR, doing="serve the student")
        service = serving.load_service(session, project=proj, escalate_to=escalate_to,
                                       max_concurrency=max_concurrency, max_chars=max_chars)
    service.refresh = serving.state_reader(proj.id)
    click.echo(f"serving {proj.name!r} at stage {service.state.stage} (student of training run "
               f"#{service.model['training_run_id']}, {service.model['teacher']} teacher) on http://{host}:{port}",
               err=True)
    uvicorn.run(serving.build_app(service), host=host, port=port, log_level="warning", access_log=False)
