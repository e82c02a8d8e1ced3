"""Review, decision and record commands (step 5): the validator's queue, verdicts, kappa, sign-off and
threshold; the sponsor's ship, iterate or kill; the project's decision record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.cli.base import _actor, _session, _table, _viewable, cli, lazy
from core.domain.choices import RECORD_FORMATS, VERDICTS, Choice
from core.domain.errors import InvalidInput, NotFound

if TYPE_CHECKING:  # the imports as mypy and import-linter read them; at run time each loads on first use
    from core.access import projects
    from core.decision import decision, record
    from core.domain import requests
    from core.review import review
    from core.store import models
else:  # lazy: `stillroom review --help` loads neither SQLAlchemy, pydantic nor pandas
    projects, decision, record, requests, review, models = lazy(
        "core.access.projects", "core.decision.decision", "core.decision.record", "core.domain.requests",
        "core.review.review", "core.store.models")


def _slice(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    column, sep, val = value.partition("=")
    if not sep or not column.strip() or not val.strip():
        raise InvalidInput(f"--slice {value!r} is not COLUMN=VALUE, e.g. --slice queue=legal.", field="slice")
    return column.strip(), val.strip()


def _fmt(x, spec: str = ".3f") -> str:
    return "" if x is None or x != x else format(x, spec)


@cli.group("review")
def review_group() -> None:
    """Step 5: review the disagreements, agree, sign off and choose the fallback threshold (validators)."""


@review_group.command("queue")
@click.argument("project")
@click.argument("evaluation", type=int)
@click.option("--slice", "slice_", metavar="COLUMN=VALUE", help="Only rows of this slice.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
def review_queue(project: str, evaluation: int, slice_: str | None, limit: int) -> None:
    """EVALUATION's disagreements, critical slices and severe classes first, least confident first."""
    with _session() as session:
        _, p = _viewable(session, project)
        q = review.disagreement_queue(session, project=p, evaluation_id=evaluation, slice=_slice(slice_),
                                      limit=limit)
    click.echo(f"{q.total:,} disagreements; showing {len(q.items):,}.")
    _table(["item", "reference", "teacher", "student", "confidence", "critical", "text"],
           [[r.id, r.reference, r.teacher_label, r.student_label, _fmt(r.student_confidence),
             "yes" if r.critical_slice or r.severe_class else "", str(r.text)[:60]] for r in q.items.itertuples()])


@review_group.command("verdict")
@click.argument("project")
@click.argument("evaluation", type=int)
@click.argument("item")
@click.option("--verdict", type=click.Choice(VERDICTS), required=True)
@click.option("--comment", default="", help="What you saw.")
@click.option("--rating", type=int, help="Your rating of the student's output, 1 to 5.")
def review_verdict(project: str, evaluation: int, item: str, verdict: str, comment: str,
                   rating: int | None) -> None:
    """Record your verdict on ITEM of EVALUATION (validators; never the project's driver)."""
    with _session() as session:
        p = projects.get_project(session, project)
        row = review.record_verdict(session, actor=_actor(session), project=p, evaluation_id=evaluation,
                                    item_id=item, verdict=verdict, comment=comment, rating=rating)
    click.echo(f"Verdict #{row.id} recorded: item {row.item_id} {row.verdict}.")


@review_group.command("kappa")
@click.argument("evaluation", type=int)
def review_kappa(evaluation: int) -> None:
    """Cohen's kappa between each pair of validators of EVALUATION."""
    with _session() as session:
        ev = session.get(models.Evaluation, evaluation)
        if ev is None:
            raise NotFound(f"no evaluation #{evaluation}: check the id.", field="evaluation")
        actor, _ = _viewable(session, str(ev.project_id))
        pairs = review.agreement(session, evaluation_id=evaluation, viewer=actor)
    if not pairs:
        click.echo("No agreement to show you: fewer than two validators reviewed this evaluation, or (blind "
                   "review) you share no reviewed items with them and no validator has approved it yet.")
        return
    _table(["validator", "validator", "shared items", "kappa"],
           [[x.validator_a, x.validator_b, x.n_items, "undefined" if x.kappa is None else f"{x.kappa:.3f}"]
            for x in pairs])


@review_group.command("signoff")
@click.argument("project")
@click.argument("evaluation", type=int)
@click.option("--approve/--reject", required=True, help="Approve or reject this evaluation.")
@click.option("--comment", default="", help="Required when rejecting.")
@click.option("--covers-declared-latency", is_flag=True,
              help="Your approval also vouches for latency figures a person declared (required to approve them).")
def review_signoff(project: str, evaluation: int, approve: bool, comment: str, covers_declared_latency: bool) -> None:
    """Approve or reject EVALUATION, named by its report's hash (validators; never the driver)."""
    with _session() as session:
        p = projects.get_project(session, project)
        row = review.sign_off(session, actor=_actor(session), project=p, evaluation_id=evaluation,
                              approve=approve, comment=comment, covers_declared_latency=covers_declared_latency)
    covers = " It covers the declared latency figures." if row.covers_declared_latency else ""
    click.echo(f"Evaluation #{row.evaluation_id} {'approved' if row.approve else 'rejected'} "
               f"(hash {row.evaluation_hash}).{covers}")


@review_group.command("threshold")
@click.argument("project")
@click.argument("evaluation", type=int)
@click.option("--threshold", type=float, help="Propose this confidence threshold; without it, show the curve.")
@click.option("--serve-every-answer", is_flag=True,
              help="Choose to serve every answer, none falling back to the teacher (threshold 0): the explicit, "
                   "recorded choice for a student whose answers carry no confidence.")
def review_threshold(project: str, evaluation: int, threshold: float | None, serve_every_answer: bool) -> None:
    """Show EVALUATION's fallback curve, or propose a threshold for rollout (validators and operators)."""
    with _session() as session:
        actor, p = _viewable(session, project)
        if threshold is None and not serve_every_answer:
            curve = review.evaluation_curve(session, project=p, evaluation_id=evaluation)
            _table(["threshold", "served", "student accuracy", "fallback", "cost per 1k"],
                   [[_fmt(r.threshold, ".2f"), _fmt(r.served_share), _fmt(r.student_accuracy),
                     _fmt(r.fallback_rate), _fmt(r.blended_cost_per_1k, ".4f")]
                    for r in curve.iloc[::5].itertuples()])
            return
        row = review.propose_threshold(session, actor=actor, project=p, evaluation_id=evaluation,
                                       threshold=threshold, serve_every_answer=serve_every_answer)
    said = (f'"{review.SERVE_EVERY_ANSWER}" recorded (threshold 0, no fallback)' if serve_every_answer
            else f"Threshold {row.threshold:g} proposed")
    click.echo(f"{said}: the student serves {row.served_share:.1%} "
               f"(accuracy {_fmt(row.student_accuracy)}), the teacher {row.fallback_rate:.1%}; "
               f"blended cost {_fmt(row.blended_cost_per_1k, '.4f')} per 1,000.")


@cli.command("decide")
@click.argument("project")
@click.option("--decision", "choice", type=click.Choice([c.value for c in Choice]), required=True)
@click.option("--evaluation", type=int, help="The evaluation decided on (required to ship or iterate).")
@click.option("--rationale", required=True, help="Why, in a sentence.")
def decide_cmd(project: str, choice: str, evaluation: int | None, rationale: str) -> None:
    """Record the sponsor's ship, iterate or kill for PROJECT's open round."""
    with _session() as session:
        p = projects.get_project(session, project)
        row = decision.decide(session, actor=_actor(session), project=p, decision=choice, rationale=rationale,
                              evaluation_id=evaluation)
    click.echo(f"Round {row.round} of {p.name!r}: {row.decision} recorded (decision #{row.id}).")
    request = requests.read_data_request(row.data_request, decision_id=row.id)
    for w in request.slices if request else []:
        click.echo(f"  data request: {w.sentence()}.")
    if row.decision == Choice.ITERATE:
        with _session() as session:
            advice = decision.evidence(session, project=p).kill
        if advice:
            click.echo(f"Stillroom recommends kill: {advice.reason}")


@cli.command("record")
@click.argument("project")
@click.option("--format", "fmt", type=click.Choice(RECORD_FORMATS), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def record_cmd(project: str, fmt: str, out: str | None) -> None:
    """Export PROJECT's decision record as Markdown or one self-contained HTML file."""
    with _session() as session:
        actor, p = _viewable(session, project)
        text = record.export(session, actor=actor, project=p, fmt=fmt)
    if out is None:
        click.echo(text)
        return
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"Decision record of {p.name!r} written to {out}.")
