"""Eval commands: evaluate a trained student as a job, import predictions made elsewhere, list and show results."""

from __future__ import annotations

import click

from core.access import projects
from core.cli.base import _actor, _session, _table, _viewable, cli
from core.cli.jobs import run_with_bar, start_in_background
from core.domain.errors import NotFound
from core.domain.jobs import EvaluateResult
from core.evaluation import imports, runs
from core.store import jobs
from core.store.models import Evaluation


def _fmt(value, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


def _verdict(passed: bool) -> str:
    return "PASSED the gate" if passed else "did NOT pass the gate"


@cli.group("eval")
def eval_group() -> None:
    """Step 5: score a student on the locked holdout against the gate (driver only)."""


@eval_group.command("start")
@click.argument("project")
@click.option("--run", "run_id", type=int, required=True, help="The finished training run to evaluate.")
@click.option("--detach", is_flag=True, help="Run the job in the background instead of here.")
def eval_start(project: str, run_id: int, detach: bool) -> None:
    """Evaluate training run --run of PROJECT on the holdout, beside the teacher and the baselines."""
    with _session() as session:
        actor = _actor(session)
        p = projects.get_project(session, project)
        job = runs.start_evaluation(session, actor=actor, project=p, training_run_id=run_id)
    click.echo(f"Evaluation of training run #{run_id} queued as job #{job.id}.")
    if detach:
        start_in_background(job.id)
        return
    run_with_bar(job.id, f"evaluate run #{run_id}")
    with _session() as session:
        ev = session.get(Evaluation, jobs.result_as(jobs.get(session, job.id), EvaluateResult).evaluation)
    click.echo(f"Evaluation #{ev.id} {_verdict(ev.passed)}; report hash {ev.report_hash}. "
               f"See it with `stillroom eval show {ev.id}`.")


@eval_group.command("import")
@click.argument("project")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(imports.KINDS), default="label", show_default=True,
              help="What the outputs are: labels, free text, JSON objects, or per-query ranking scores.")
@click.option("--latency-model-dir", type=click.Path(file_okay=False),
              help="Measure the student's latency here from its saved model directory.")
@click.option("--latency-endpoint", help="Measure the student's latency here through its HTTP endpoint "
              "(POST {\"texts\": [...]}, any 2xx answer).")
@click.option("--declared-p95-ms", type=float, help="Or declare its p95 latency in ms (with --declared-by, "
              "--declared-method and --declared-where).")
@click.option("--declared-p50-ms", type=float)
@click.option("--declared-throughput", type=float, help="Declared batched throughput, examples per second.")
@click.option("--declared-by", help="Who declares the latency figures (a person's name).")
@click.option("--declared-method", help="How they were measured (tool, batch size, hardware, load).")
@click.option("--declared-where", help="Where they were measured (environment, region, date).")
def eval_import(project: str, file: str, kind: str, latency_model_dir: str | None, latency_endpoint: str | None,
                declared_p95_ms: float | None, declared_p50_ms: float | None, declared_throughput: float | None,
                declared_by: str | None, declared_method: str | None, declared_where: str | None) -> None:
    """Evaluate predictions for PROJECT's holdout made elsewhere.

    \b
    FILE is CSV, JSONL or Parquet with one row per holdout id (`stillroom data holdout-export` writes them):
      id          a holdout id, each once; a missing id is scored as a wrong answer
      student     the student's output: a label (--kind label), text (text), a JSON object (json),
                  or the item's score (ranking)
      teacher     optional and never used: compared with the answers of the project's teacher run,
                  mismatches counted. Teacher figures (a relative-to-teacher floor, agreement, the
                  truth where the holdout has no reference) come only from a teacher run recorded
                  before this import that answers every holdout row: one Stillroom ran, or a file
                  another driver imported (`stillroom teacher run --adapter file`; rankings: the
                  label column holds the teacher's scores)
      query_id    rankings: the holdout's query of the item
      confidence  optional: the student's probability of its answer, 0 to 1; an answer without one
                  always falls back to the teacher, unless an operator or validator chooses
                  `stillroom review threshold PROJECT EVALUATION --serve-every-answer`
      text        optional: the input; must match the holdout's text, else the file is refused
      reference   optional and never used: compared with the holdout's references, mismatches counted
      judge_score, score_*   optional numeric per-example scores (a judge's)
    Other columns are ignored with a note. Example files: examples/byo/.
    """
    declared = None
    if declared_p95_ms is not None:
        declared = {"p95_ms": declared_p95_ms, "p50_ms": declared_p50_ms, "batch_throughput": declared_throughput,
                    "declared_by": declared_by, "method": declared_method, "where": declared_where}
    with _session() as session:
        actor = _actor(session)
        p = projects.get_project(session, project)
        ev = imports.import_predictions(session, actor=actor, project=p, path=file, kind=kind,
                                        latency_model_dir=latency_model_dir, latency_endpoint=latency_endpoint,
                                        declared_latency=declared)
        report = runs.load_report(session, ev)
    click.echo(f"Evaluation #{ev.id} of imported {kind} predictions {_verdict(ev.passed)}; report hash "
               f"{ev.report_hash}.")
    for line in imports.notes(report):
        click.echo(line)


@eval_group.command("list")
@click.argument("project")
def eval_list(project: str) -> None:
    """PROJECT's evaluations: round, source, gate version, result."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = []
        for ev in runs.list_evaluations(session, project_id=p.id):
            version = runs.gate_of(session, ev).version
            superseded = " (superseded)" if runs.is_superseded(session, ev) else ""
            rows.append((ev.id, ev.round, ev.source, ev.training_run_id or "", f"v{version}{superseded}",
                         "PASS" if ev.passed else "FAIL", _fmt(ev.summary.get("student_accuracy"), ".3f"),
                         ev.report_hash[:16]))
    if not rows:
        click.echo(f"Project {p.name!r} has no evaluations yet: start one with `stillroom eval start`.")
        return
    _table(["ID", "ROUND", "SOURCE", "RUN", "GATE", "RESULT", "ACCURACY", "REPORT HASH"], rows)


@eval_group.command("show")
@click.argument("evaluation_id", type=int)
def eval_show(evaluation_id: int) -> None:
    """An evaluation's gate check: every criterion PASS, FAIL or INSUFFICIENT DATA with its numbers."""
    with _session() as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            raise NotFound(f"no evaluation #{evaluation_id}: list them with `stillroom eval list PROJECT`.",
                                field="evaluation")
        _, p = _viewable(session, str(row.project_id))
        ev = runs.get_evaluation(session, project=p, evaluation_id=evaluation_id)
        report = runs.load_report(session, ev)
        superseded = runs.is_superseded(session, ev)
    meta = report.evaluation
    click.echo(f"Evaluation #{ev.id} of {p.name!r}, round {ev.round}, {ev.source}, gate v{meta.gate_version}"
               f"{' (SUPERSEDED by a newer gate version)' if superseded else ''}: {_verdict(ev.passed)}.")
    click.echo(f"Report hash {ev.report_hash}; {meta.n} holdout rows"
               + (f" (holdout version {meta.holdout_version})." if meta.holdout_version else "."))
    for line in imports.notes(report):
        click.echo(line)
    student, teacher = report.student, report.teacher
    click.echo(f"Student accuracy {_fmt(student.accuracy, '.3f') or 'n/a'}, macro-F1 "
               f"{_fmt(student.macro_f1, '.3f') or 'n/a'}, agreement {_fmt(student.agreement, '.3f')}"
               f"; teacher accuracy {_fmt(teacher.accuracy, '.3f') or 'n/a'}.")
    _table(["STATUS", "CRITERION", "VALUE", "THRESHOLD", "N", "SOURCE", "DETAIL"],
           [(c.status, c.name, _fmt(c.value), _fmt(c.threshold), c.n if c.n is not None else "", c.source,
             c.detail) for c in report.criteria])
