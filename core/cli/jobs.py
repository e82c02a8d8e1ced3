"""Job commands: run a queued job here with a progress bar, list and inspect jobs."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from core.cli.base import _actor, _engine, _session, _table, _viewable, cli, lazy

if TYPE_CHECKING:  # the import as mypy and import-linter read it; at run time it loads on first use
    from core.store import config, jobs, stored_dirs
    from core.training import checkpoints
else:  # lazy: `stillroom jobs --help` loads neither SQLAlchemy nor the table models
    jobs, checkpoints, stored_dirs, config = lazy("core.store.jobs", "core.training.checkpoints",
                                                  "core.store.stored_dirs", "core.store.config")


def register_handlers() -> None:
    """Import every module that registers a job handler (each registers its kind with @handler when imported).
    Here, not at the top: every other command would pay for pandas and scipy."""
    from core.demo import setup, teacher  # noqa: F401
    from core.evaluation import jobs as evaluate  # noqa: F401
    from core.teacher import jobs as teacher_run  # noqa: F401
    from core.training import jobs as train  # noqa: F401
    from core.training import search  # noqa: F401


def run_with_bar(job_id: int, label: str, *, credential: str | None = None) -> None:
    """Run a job in this process, drawing a terminal progress bar as it reports."""
    from tqdm import tqdm  # lazy: only a job run here draws a bar (tqdm costs `jobs list` about 0.05 s)

    register_handlers()
    tell_failures()
    engine = _engine()
    with tqdm(total=1000, desc=label, unit="‰", leave=True, dynamic_ncols=True,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left {postfix}") as bar:

        def on_progress(fraction: float, message: str) -> None:
            bar.update(int(fraction * 1000) - bar.n)
            bar.set_postfix_str(message[:60], refresh=False)

        # A failure is told to the submitter where it is recorded (core.store.jobs.noticed_failure); a run that
        # lost its job to another worker records none, whatever became of the job after.
        job = jobs.run(job_id, engine=engine, on_progress=on_progress, credential=credential)
    click.echo(f"job #{job.id} {job.status}" + (f": {job.error}" if job.error else "."))
    jobs.result_or_raise(job)


def tell_failures() -> None:
    """Register the submitter's notice of a job's failure with the store (core.store.jobs.FAILURE_LISTENERS), in a
    process that runs or watches jobs: the store imports no step above it, so whoever records a failure there can
    tell only through what was registered."""
    from core.notify import inbox  # noqa: F401  # lazy: registers core.notify's listener when imported


def start_in_background(job_id: int) -> None:
    """Start the job in a process of its own, or leave it for the workers (STILLROOM_JOB_RUNNER=workers)."""
    pid = jobs.start_detached(job_id)
    if pid is None:
        click.echo(f"Job #{job_id} is queued for the workers (`stillroom worker` on any host): follow it with "
                   "`stillroom jobs list`.")
    else:
        click.echo(f"Job #{job_id} started in the background (pid {pid}): follow it with `stillroom jobs list`.")


@cli.group("jobs")
def jobs_group() -> None:
    """Long work (teacher runs, training) and its progress."""


@jobs_group.command("run")
@click.argument("job_id", type=int)
def jobs_run(job_id: int) -> None:
    """Run a queued (or failed, to resume) job in this process. Only its submitter may (proven like any command:
    a personal API token, or --as where no token is required): the job's events are written in their name. The
    process the app starts for a job proves itself with the job's one-time credential instead."""
    # Not a setting: the credential is this one process's, put in its environment by core.store.jobs.start_detached.
    credential = os.environ.get(jobs.CREDENTIAL_ENV)
    if credential is None:
        with _session() as session:
            jobs.require_runner(session, job_id=job_id, person=_actor(session))
    run_with_bar(job_id, f"job #{job_id}", credential=credential)


@jobs_group.command("list")
@click.argument("project")
def jobs_list(project: str) -> None:
    """The project's recent jobs; a worker's job whose heartbeat went quiet reads "stalled", with what happens next."""
    with _session() as session:
        _, p = _viewable(session, project)
        listed = [(j, jobs.state(j)) for j in jobs.list_jobs(session, project_id=p.id)]
    _table(["ID", "KIND", "STATUS", "PROGRESS", "TIME", "MESSAGE"],
           [(j.id, j.kind, st.status, f"{j.progress:.0%}", jobs.timing(j).sentence(), j.message[:50] or j.error[:50])
            for j, st in listed])
    for j, st in listed:
        if st.status == "stalled":
            click.echo(f"Job #{j.id} {st.sentence()}.")


@jobs_group.command("show")
@click.argument("job_id", type=int)
def jobs_show(job_id: int) -> None:
    """One job: what it is doing (who holds it, or that its worker went quiet), its progress, time and error."""
    tell_failures()  # reading the job may find its process dead: that failure is told to its submitter
    with _session() as session:
        job = jobs.get(session, job_id)
        _viewable(session, str(job.project_id))
        st = jobs.state(job)
    click.echo(f"Job #{job.id} ({job.kind}): {st.sentence()}.")
    click.echo(f"Progress: {job.progress:.0%}" + (f", {job.message}" if job.message else "")
               + f" · {jobs.timing(job).sentence()}.")
    if job.for_workers:
        click.echo(f"Claims by workers: {job.attempts}" + (f", last by {job.worker}" if job.worker else "") + ".")
    if job.error:
        click.echo(f"Error: {job.error}")


@jobs_group.command("sweep-checkpoints")
@click.option("--grace-hours", type=click.FloatRange(0, 24 * 365), default=1.0, show_default=True,
              help="Leave copies written more recently than this: a run may be about to record them.")
def jobs_sweep_checkpoints(grace_hours: float) -> None:
    """Remove training checkpoint copies in the artifact store that no run records (admins): a worker that died
    between copying a checkpoint and recording it left them. A recorded copy, or one of a running job, is never
    removed; each run swept gets an audit event."""
    with _session() as session:
        swept = checkpoints.sweep(session, actor=_actor(session), grace=timedelta(hours=grace_hours))
    click.echo(swept.sentence())
    for rel in swept.removed:
        click.echo(f"- {rel}")


@jobs_group.command("sweep-teacher-files")
@click.option("--grace-hours", type=click.FloatRange(0, 24 * 365), default=1.0, show_default=True,
              help="Leave stored files written more recently than this: a submit may be about to record them.")
@click.option("--cache-days", type=click.FloatRange(0, 365 * 100, min_open=True), default=None,
              help="Also remove this host's cached copies unused for this many days  [default: "
                   "STILLROOM_DIR_CACHE_DAYS, 7].")
def jobs_sweep_teacher_files(grace_hours: float, cache_days: float | None) -> None:
    """Remove local teachers' model files in the artifact store that no run or job records (admins): a submit that
    failed after copying them left them; a recorded file is never removed, and a sweep that removes any gets an
    audit event. Then prune this host's cached copies unused for --cache-days (never one a job here uses; each
    host also prunes its own when it caches a new copy)."""
    with _session() as session:
        swept = stored_dirs.sweep(session, actor=_actor(session), grace=timedelta(hours=grace_hours))
        days = cache_days if cache_days is not None else config.get_settings().dir_cache_days
    click.echo(swept.sentence())
    for rel in swept.removed:
        click.echo(f"- {rel}")
    pruned = stored_dirs.prune_cache(days=days)
    click.echo(f"Removed {len(pruned)} cached model director(ies) on this host unused for {days:g} days.")
    for name in pruned:
        click.echo(f"- {stored_dirs.CACHE}/{name}")
