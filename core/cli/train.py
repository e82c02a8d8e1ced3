"""Train commands: distil a student as a job with a terminal progress bar, resume it, compare runs."""

from __future__ import annotations

import click

from core.access import projects
from core.cli.base import _actor, _session, _table, _viewable, cli
from core.cli.jobs import run_with_bar, start_in_background
from core.domain.jobs import SearchParams
from core.ml.config import FAMILIES
from core.store import jobs
from core.training import runs


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _run_or_detach(run_id: int, job_id: int, detach: bool) -> None:
    if detach:
        start_in_background(job_id)
        return
    run_with_bar(job_id, f"train run #{run_id}")
    with _session() as session:
        run = runs.get_run(session, run_id)
    m = run.metrics
    click.echo(f"Training run #{run.id} done: best epoch {run.best_epoch} of {run.epochs_done}, validation "
               f"agreement with the teacher {_fmt(m.get('val_agreement'), '.3f')}, accuracy "
               f"{_fmt(m.get('val_accuracy'), '.3f') or 'n/a'}; student saved at {m.get('model_path')}.")
    if m.get("init"):
        click.echo(f"Started from: {m['init']}.")
    if m.get("losses"):
        click.echo(f"Losses: {m['losses']}.")


@cli.group("train")
def train_group() -> None:
    """Step 4: distil students from the teacher's outputs (driver only, under a locked gate)."""


@train_group.command("start")
@click.argument("project")
@click.option("--teacher-run", "teacher_run", type=int, required=True, help="The teacher run to distil from.")
@click.option("--filter", "filter_id", type=int, help="A filtering of that run (default: all its outputs).")
@click.option("--family", type=click.Choice(FAMILIES), help="Train one run of this family (a small transformer, or "
              "hashed word and character n-grams) instead of the default search over both families.")
@click.option("--size", help="tiny or small (with --family; default tiny).")
@click.option("--budget", "budget_s", type=click.FloatRange(1, 7 * 86_400),
              help="Seconds the default search may spend (default: STILLROOM_TRAIN_BUDGET_S, 900).")
@click.option("--epochs", type=int, help="Most epochs to train (early stopping may end sooner).")
@click.option("--temperature", type=float, help="Distillation temperature T.")
@click.option("--alpha", type=float, help="Weight of the KD term; 1 − alpha weighs cross-entropy on references.")
@click.option("--hidden-weight", "hidden_weight", type=float, help="Weight of the hidden-state loss against a "
              "local transformers teacher's layers (TinyBERT; 0, the default, leaves it out).")
@click.option("--attention-weight", "attention_weight", type=float, help="Weight of the attention-map loss "
              "against a local transformers teacher's layers (0, the default, leaves it out).")
@click.option("--patience", type=int, help="Epochs without a rise in validation agreement before stopping.")
@click.option("--batch-size", "batch_size", type=int, help="Rows per step.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--seed", type=int, help="Seed of the validation split and the initialisation.")
@click.option("--device", help="auto (a GPU when one is present, else the CPU; the default), cpu, cuda, cuda:N or mps.")
@click.option("--student-init", "student_init", help="A pretrained encoder directory (BERT, DistilBERT, MiniLM... "
              "with its tokenizer; a hub id where the machine is online) the transformer student starts from, with "
              "a new head; the search tries it as a candidate.")
@click.option("--domain-pretrain", "domain_pretrain", is_flag=True, default=None,
              help="With --family transformer: pre-train the student on the project's own texts (masked-language "
              "modelling, holdout left out) before distilling.")
@click.option("--pretrain-share", "pretrain_share", type=float,
              help="Share of the run's time budget pre-training may take (default 0.3).")
@click.option("--detach", is_flag=True, help="Run the job in the background instead of here.")
def train_start(project: str, teacher_run: int, filter_id: int | None, detach: bool, budget_s: float | None,
                **settings) -> None:
    """Distil students for PROJECT from a teacher run, showing a progress bar.

    By default both families are trained, with a small search over each family's key settings within a time
    budget, and one is recommended with its reasons; --family trains a single run instead."""
    config = {k: v for k, v in settings.items() if v is not None}
    if not config.get("family"):
        _search(project, teacher_run, filter_id, detach, budget_s, config)
        return
    with _session() as session:
        actor = _actor(session)
        p = projects.get_project(session, project)
        run, job = runs.start_training(session, actor=actor, project=p, teacher_run_id=teacher_run,
                                       filter_id=filter_id, config=config)
    click.echo(f"Training run #{run.id} ({run.family} {run.size}) queued as job #{job.id}.")
    _run_or_detach(run.id, job.id, detach)


def _search(project: str, teacher_run: int, filter_id: int | None, detach: bool, budget_s: float | None,
            base: dict) -> None:
    from core.store.config import get_settings
    from core.training import search

    base.pop("family", None)
    base.pop("size", None)
    base.pop("domain_pretrain", None)  # the search has its own pre-trained-here candidate
    student_init = base.pop("student_init", None)
    budget = budget_s or get_settings().train_budget_s
    with _session() as session:
        actor = _actor(session)
        p = projects.get_project(session, project)
        job = search.start_search(session, actor=actor, project=p, teacher_run_id=teacher_run,
                                  filter_id=filter_id, budget_s=budget, base=base, student_init=student_init)
    plan = jobs.params_as(job, SearchParams).candidates
    families = " and ".join(dict.fromkeys(c["family"] for c in plan))
    click.echo(f"Search of {len(plan)} candidates ({families}) within {budget:.0f} s queued as job #{job.id}.")
    if detach:
        start_in_background(job.id)
        return
    run_with_bar(job.id, "training search")
    _print_search(job.id)


def _print_search(job_id: int) -> None:
    from core.training import search

    with _session() as session:
        rec = search.search_recommendation(session, job=jobs.get(session, job_id))
    _table(["RUN", "FAMILY", "SIZE", "LR", "STATUS", "EPOCHS", "AGREEMENT", "ACCURACY", "RETAINED", "P95 MS",
            "PARAMS", "SECONDS"],
           [(c.run_id, c.family, c.kind, _fmt(c.lr, "g"), c.status, c.epochs_done, _fmt(c.val_agreement, ".3f"),
             _fmt(c.val_accuracy, ".3f"), _fmt(c.retained, ".1%"), _fmt(c.single_p95_ms, ".2f"),
             _fmt(c.params, ","), _fmt(c.seconds, ".0f")) for c in rec.candidates])
    for c in rec.candidates:
        if c.init:
            click.echo(f"  #{c.run_id} started from: {c.init}.")
    for line in rec.bought:
        click.echo(f"  {line[0].upper()}{line[1:]}.")
    if rec.budget_line:
        click.echo(rec.budget_line + "." + "".join(f"\n  {x}." for x in rec.skipped))
    if rec.run_id is None:
        click.echo("No recommendation: " + "; ".join(rec.reasons) + ".")
        return
    click.echo(f"Recommended: run #{rec.run_id}: " + "; ".join(rec.reasons) + ".")
    click.echo(f"Evaluate it with `stillroom eval start PROJECT --run {rec.run_id}`.")


@train_group.command("resume")
@click.argument("run_id", type=int)
@click.option("--detach", is_flag=True, help="Run the job in the background instead of here.")
def train_resume(run_id: int, detach: bool) -> None:
    """Carry a failed training run on from its last checkpoint."""
    with _session() as session:
        run, job = runs.resume_training(session, actor=_actor(session), run_id=run_id)
    click.echo(f"Training run #{run.id} resumes after epoch {run.epochs_done} as job #{job.id}.")
    _run_or_detach(run.id, job.id, detach)


@train_group.command("runs")
@click.argument("project")
def train_runs(project: str) -> None:
    """PROJECT's training runs side by side: family, size, agreement, accuracy, speed."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = runs.compare_runs(session, project_id=p.id)
    if not rows:
        click.echo(f"Project {p.name!r} has no training runs yet: start one with `stillroom train start`.")
        return
    _table(["RUN", "FAMILY", "SIZE", "STATUS", "PARAMS", "EPOCHS", "AGREEMENT", "ACCURACY", "MS/EX", "P95 MS",
            "TEACHER RUN", "GATE"],
           [(r.run_id, r.family, r.size, r.status, _fmt(r.params, ","), r.epochs_done,
             _fmt(r.val_agreement, ".3f"), _fmt(r.val_accuracy, ".3f"), _fmt(r.ms_per_example, ".3f"),
             _fmt(r.single_p95_ms, ".2f"), r.teacher_run_id, f"v{r.gate_version}" if r.gate_version else "")
            for r in rows])


@train_group.command("show")
@click.argument("run_id", type=int)
def train_show(run_id: int) -> None:
    """A training run's settings and its loss curve, one line per epoch."""
    with _session() as session:
        run = runs.get_run(session, run_id)
        _viewable(session, str(run.project_id))
        curve = runs.loss_curve(session, run_id=run.id)
    click.echo(f"Training run #{run.id}: {run.family} {run.size}, {run.status}, {run.epochs_done} epochs done, "
               f"best epoch {run.best_epoch}.")
    click.echo("Settings: " + ", ".join(f"{k}={v}" for k, v in sorted(run.config.items())))
    if run.metrics.get("init"):
        click.echo(f"Started from: {run.metrics['init']}.")
    if run.metrics.get("error"):
        click.echo(f"Error: {run.metrics['error']}")
    epochs = curve[curve["val_loss"].notna()]
    _table(["EPOCH", "STEP", "TRAIN LOSS", "VAL LOSS", "AGREEMENT"],
           [(int(r.epoch), int(r.step), f"{r.train_loss:.4f}", f"{r.val_loss:.4f}", f"{r.val_agreement:.3f}")
            for r in epochs.itertuples()])
