"""`stillroom worker`: run the jobs handed to workers (STILLROOM_JOB_RUNNER=workers) on this host."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from core.cli.base import _engine, cli, lazy
from core.cli.jobs import tell_failures
from core.domain.errors import InvalidInput

if TYPE_CHECKING:  # the import as mypy and import-linter read it; at run time it loads on first use
    from core.store import jobs, worker
else:  # lazy: `stillroom worker --help` loads neither SQLAlchemy nor the table models
    jobs, worker = lazy("core.store.jobs", "core.store.worker")


def _kinds(values: tuple[str, ...]) -> list[str]:
    """--kinds train,evaluate (or the option repeated): each one of the job kinds (checked by name: the worker
    itself runs no job, so it loads no handler and no model; each job's own process does)."""
    kinds = [k.strip() for v in values for k in v.split(",") if k.strip()]
    known = sorted(str(k) for k in jobs.JobKind)
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise InvalidInput(f"--kinds: no job kind {', '.join(map(repr, unknown))}: use some of {', '.join(known)}.",
                           field="kinds")
    return kinds


@cli.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs run at once, each in a process of its own.")
@click.option("--once", is_flag=True, help="Stop when nothing is left to claim and this worker's jobs have ended.")
@click.option("--kinds", multiple=True, metavar="KIND[,KIND]", help="Run only these job kinds (default: all).")
def worker_command(concurrency: int, once: bool, kinds: tuple[str, ...]) -> None:
    """Run queued jobs handed to workers, on any host that reaches the database and the artifact store.

    Jobs are handed to workers when STILLROOM_JOB_RUNNER=workers (the app and --detach then start no process).
    Each job runs in its own `stillroom jobs run` process, in its submitter's name, and the worker prints its
    progress. A job whose worker stops heartbeating for STILLROOM_WORKER_STALE_S is taken over by another
    worker and run again (training resumes from its last checkpoint, through STILLROOM_ARTIFACT_STORE when the
    hosts share no data directory); meanwhile `stillroom jobs list` shows it stalled. After
    STILLROOM_WORKER_MAX_ATTEMPTS claims it fails, saying why. SIGTERM (or Ctrl-C) stops the worker cleanly: its
    jobs go back to the queue.
    """
    chosen = _kinds(kinds)
    tell_failures()  # a job this worker fails (its processes kept dying) is told to its submitter
    w = worker.Worker(engine=_engine(), concurrency=concurrency, kinds=chosen, once=once,
                      say=lambda line: click.echo(line))
    signal.signal(signal.SIGTERM, w.stop)
    signal.signal(signal.SIGINT, w.stop)
    report = w.run()
    click.echo(f"worker {report.worker} stopped after {len(report.claimed)} claim(s): "
               + (", ".join(f"#{j} {s}" for j, s in report.finished.items()) or "nothing ran") + ".")
