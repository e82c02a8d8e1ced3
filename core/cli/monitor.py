"""Rollout and monitoring commands (after launch): the operator's stages, live traffic, drift and re-distillation."""

from __future__ import annotations

import click

from core.cli.base import _session, _table, _viewable, cli
from core.domain.requests import read_redistill
from core.rollout import config, drift, fallback, logs, redistill, rollout


def _fmt(x, spec: str = ".3f") -> str:
    return "" if x is None or x != x else format(x, spec)


def _criteria(check: rollout.AdvanceCheck | dict) -> None:
    rows = check["criteria"] if isinstance(check, dict) else [c.as_dict() for c in check.criteria]
    _table(["criterion", "status", "value", "threshold", "n", "detail"],
           [[c["name"], c["status"], _fmt(c["value"], ".4g"), _fmt(c["threshold"], "g"), c["n"], c["detail"]]
            for c in rows])


@cli.group("rollout")
def rollout_group() -> None:
    """After launch: roll the shipped student out in stages, shadow first (operators)."""


@rollout_group.command("start")
@click.argument("project")
@click.option("--reason", default="", help="Why now.")
def rollout_start(project: str, reason: str) -> None:
    """Start PROJECT's rollout in shadow (only after a ship decision)."""
    with _session() as session:
        actor, p = _viewable(session, project)
        row = rollout.start(session, actor=actor, project=p, reason=reason)
    click.echo(f"Rollout started in shadow with evaluation #{row.evaluation_id}, threshold {row.threshold:g}.")


@rollout_group.command("advance")
@click.argument("project")
@click.option("--reason", default="", help="Why now.")
def rollout_advance(project: str, reason: str) -> None:
    """Move PROJECT to its next stage when the current stage's traffic meets every criterion."""
    with _session() as session:
        actor, p = _viewable(session, project)
        row = rollout.advance(session, actor=actor, project=p, reason=reason)
    _criteria(row.criteria)
    click.echo(f"Advanced to stage {row.stage}.")


@rollout_group.command("rollback")
@click.argument("project")
@click.option("--reason", required=True, help="What went wrong.")
@click.option("--to", "to", type=click.Choice(["off", "previous"]), default="off", show_default=True)
def rollout_rollback(project: str, reason: str, to: str) -> None:
    """Roll PROJECT back to off, or to the previous stage."""
    with _session() as session:
        actor, p = _viewable(session, project)
        row = rollout.rollback(session, actor=actor, project=p, reason=reason, to=to)
    click.echo(f"Rolled back from {row.criteria.get('from')} to {row.stage}.")


@rollout_group.command("fallback")
@click.argument("project")
@click.option("--endpoint", help="A chat endpoint on the admin's list (STILLROOM_TEACHER_ENDPOINTS), e.g. "
                                 "https://llm.example/v1.")
@click.option("--model", help="The model the endpoint serves (with --endpoint).")
@click.option("--api-key-env", default=None, help="The listed variable holding the endpoint's key.")
@click.option("--queue", is_flag=True, help="A person's queue answers what the student does not.")
def rollout_fallback(project: str, endpoint: str | None, model: str | None, api_key_env: str | None,
                     queue: bool) -> None:
    """Show PROJECT's fallback target, or choose one for a student whose teacher cannot answer live."""
    with _session() as session:
        actor, p = _viewable(session, project)
        if queue or endpoint or model:
            if queue == bool(endpoint):
                raise click.UsageError("give either --queue or --endpoint URL --model NAME.")
            choice = {"kind": "queue"} if queue else {"kind": "endpoint", "endpoint": endpoint, "model": model}
            fallback.choose(session, actor=actor, project=p, choice={
                **choice, **({"api_key_env": api_key_env} if api_key_env else {})})
        target = rollout.fallback_target(session, project_id=p.id)
        chosen = config.get_config(session, project_id=p.id).fallback
    if target is not None:
        click.echo(target.sentence())
    elif chosen is not None:
        click.echo(f"Fallback target chosen: {chosen.kind}{' ' + chosen.endpoint if chosen.endpoint else ''} "
                   "(used when a student of a file teacher ships).")
    else:
        click.echo("No shipped student yet, and no fallback target chosen.")


@rollout_group.command("status")
@click.argument("project")
def rollout_status(project: str) -> None:
    """PROJECT's stage, its history and the advance criteria as they stand."""
    with _session() as session:
        _, p = _viewable(session, project)
        state = rollout.state(session, project_id=p.id)
        events = rollout.history(session, project_id=p.id)
        check = rollout.check_advance(session, project_id=p.id) if state.stage != rollout.OFF else None
    click.echo(f"Stage {state.stage} ({state.percent}% to the student), threshold {state.threshold:g}, "
               f"must-escalate {', '.join(state.must_escalate) or 'none'}.")
    _table(["#", "when", "action", "stage", "reason"],
           [[e.id, e.created_at.strftime("%Y-%m-%d %H:%M"), e.action, e.stage, e.reason] for e in events])
    if check is not None and check.next_stage:
        click.echo(f"To advance to {check.next_stage}:")
        _criteria(check)


@cli.group("monitor")
def monitor_group() -> None:
    """After launch: live traffic, drift against the training data, and re-distillation."""


@monitor_group.command("summary")
@click.argument("project")
@click.option("--freq", default="1h", show_default=True, help="Time bucket, e.g. 15min, 1h, 1D.")
def monitor_summary(project: str, freq: str) -> None:
    """PROJECT's logged traffic over time and its agreement per slice."""
    with _session() as session:
        _, p = _viewable(session, project)
        state = rollout.state(session, project_id=p.id)
    df = logs.read_requests(p.id)
    summary = logs.traffic_summary(df, freq, threshold=state.threshold if state.evaluation_id else None,
                                   must_escalate=state.must_escalate)
    o = summary.overall
    click.echo(f"{o['requests']:,} requests; fallback {_fmt(o['fallback_rate'])}, p50 {_fmt(o['p50_ms'], '.1f')} ms, "
               f"p95 {_fmt(o['p95_ms'], '.1f')} ms, agreement {_fmt(o['agreement'])} on {o['asked']:,} asked.")
    _table(["bucket", "requests", "fallback", "p50 ms", "p95 ms", "confidence", "agreement"],
           [[r.bucket, r.requests, _fmt(r.fallback_rate), _fmt(r.p50_ms, ".1f"), _fmt(r.p95_ms, ".1f"),
             _fmt(r.mean_confidence), _fmt(r.agreement)] for r in summary.over_time.itertuples()])
    if len(summary.slices):
        _table(["slice", "requests", "asked", "agreement"],
               [[f"{r.column}={r.value}", r.requests, r.asked, _fmt(r.agreement)]
                for r in summary.slices.itertuples()])


@monitor_group.command("drift")
@click.argument("project")
def monitor_drift(project: str) -> None:
    """Drift of PROJECT's live inputs against its training data (PSI and Jensen-Shannon distance)."""
    with _session() as session:
        _, p = _viewable(session, project)
        report = drift.drift_report(session, project_id=p.id)
    click.echo(f"{report.n_live:,} live requests against {report.reference}; PSI warn {report.psi_warn:g}, "
               f"alert {report.psi_alert:g}: {report.status}.")
    _table(["feature", "PSI", "JS distance", "status", "reference n", "live n"],
           [[f.feature, _fmt(f.psi, ".4f"), _fmt(f.js, ".4f"), f.status, f.n_reference, f.n_live]
            for f in report.features])


@monitor_group.command("config")
@click.argument("project")
@click.option("--psi-warn", type=float)
@click.option("--psi-alert", type=float)
@click.option("--agreement-floor", type=float)
@click.option("--teacher-sample-rate", type=float)
@click.option("--max-fallback-rate", type=float)
@click.option("--min-requests", type=int)
@click.option("--stages", help="Comma-separated, shadow first, e.g. shadow,10,50,100.")
@click.option("--must-escalate", help="Comma-separated labels always sent to the teacher.")
def monitor_config(project: str, **options) -> None:
    """Show PROJECT's monitoring settings, or change the ones given (operators)."""
    changes = {k: v for k, v in options.items() if v is not None}
    with _session() as session:
        actor, p = _viewable(session, project)
        settings = (config.set_config(session, actor=actor, project=p, changes=changes) if changes
                    else config.get_config(session, project_id=p.id))
        floor = config.agreement_floor(session, project_id=p.id, settings=settings)
        escalate = config.must_escalate(session, project_id=p.id, settings=settings)
    shown = {**settings.model_dump(), "agreement_floor": floor, "must_escalate": escalate}
    _table(["setting", "value"], [[k, ",".join(v) if isinstance(v, list) else v] for k, v in shown.items()])


@monitor_group.command("redistill")
@click.argument("project")
@click.option("--reason", required=True, help="What changed.")
@click.option("--since", help="Only traffic from this date or time on (ISO 8601).")
def monitor_redistill(project: str, reason: str, since: str | None) -> None:
    """Open a re-distillation round from PROJECT's drifted traffic (operators)."""
    with _session() as session:
        actor, p = _viewable(session, project)
        row = redistill.open_redistill(session, actor=actor, project=p, reason=reason, since=since)
    drift = read_redistill(row.drift, request_id=row.id)
    click.echo(f"Re-distillation request #{row.id} opened: {'; '.join(drift.triggers)}.")
    _table(["slice", "live share", "training share", "examples wanted"],
           [[f"{s.column}={s.value}", _fmt(s.live_share), _fmt(s.training_share), s.examples_wanted]
            for s in drift.slices])
