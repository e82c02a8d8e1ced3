"""Issue 20: `stillroom worker` from the command line: a real job through `stillroom jobs run` in its own process,
a clean stop on SIGTERM, a bad --kinds refused, and no model stack loaded by the worker itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner
from sqlmodel import Session, col, select
from test_cli_startup import MODEL_STACK, REPO, first_to_load, run_in_one_process

from core.cli import cli
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job


def test_a_worker_runs_a_queued_job_through_its_own_jobs_run_process(engine, session, demo, moderation, monkeypatch):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")
    monkeypatch.setenv("STILLROOM_WORKER_POLL_S", "0.1")
    get_settings.cache_clear()
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=jobs.JobKind.EVALUATE,
                      params={"training_run_id": 999})
    assert jobs.start_detached(job.id) is None
    done = CliRunner().invoke(cli, ["worker", "--once", "--kinds", "evaluate,train"])
    assert done.exit_code == 0, done.output
    assert f"job #{job.id} (evaluate) claimed, attempt 1" in done.output
    with Session(engine) as s:
        ran = s.get_one(Job, job.id)
        finish = s.exec(select(AuditEvent).where(AuditEvent.entity_id == str(job.id))
                        .order_by(col(AuditEvent.id).desc())).first()
    # The job ran in `stillroom jobs run` (its handler refused: no locked gate), in dana's name, by this worker.
    assert ran.status == "failed" and "is not locked: the sponsor must lock it" in ran.error
    assert f"job #{job.id} (evaluate) failed: " in done.output and f"#{job.id} failed" in done.output
    assert (finish.actor, finish.action, ran.worker in finish.payload) == ("dana", "job.failed", True)
    get_settings.cache_clear()


def test_a_worker_stops_cleanly_on_sigterm(engine, db_url):
    worker = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--concurrency", "2"], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    first = worker.stdout.readline()
    assert "up to 2 job(s) at once" in first
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    rest = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0 and "stopped after 0 claim(s): nothing ran." in rest


def test_an_unknown_kind_is_refused_naming_the_option(engine):
    refused = CliRunner().invoke(cli, ["worker", "--once", "--kinds", "train,trian"])
    assert refused.exit_code == 2 and "--kinds: no job kind 'trian': use some of" in refused.stderr


def test_the_worker_loads_no_model_stack(engine, db_url):
    results = run_in_one_process([["worker", "--help"], ["worker", "--once"]], env={"DATABASE_URL": db_url})
    assert [code for _, code, _ in results] == [0, 0]
    assert first_to_load(results, MODEL_STACK) == []
