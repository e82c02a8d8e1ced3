"""Issue 20: with STILLROOM_JOB_RUNNER=workers, `stillroom demo` starts no process, so it must not promise that
the teacher trains in the background: it says a `stillroom worker` has to run, and the job waits for one."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.cli import cli
from core.demo import seed as demo_mod
from core.store.config import get_settings
from core.store.models import Job


def test_the_demo_says_a_worker_must_run_when_jobs_go_to_the_workers(engine, demo, session, monkeypatch):
    monkeypatch.setenv("STILLROOM_JOB_RUNNER", "workers")
    get_settings.cache_clear()
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **kw: pytest.fail("no process may start"))
    result = CliRunner().invoke(cli, ["demo", "--tickets", "1500", "--teacher-size", "tiny", "--no-showcase"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    job = session.exec(select(Job).where(Job.kind == demo_mod.SETUP_JOB)).one()
    assert (job.status, job.for_workers) == ("queued", True)
    assert "trains in the background" not in result.stdout
    assert (f"The demo teacher is queued for the workers as job #{job.id}: it trains only once a `stillroom worker` "
            "runs on a host that reaches this database") in " ".join(result.stdout.split())
    assert "`stillroom --as dana jobs list" in result.stdout


def test_by_default_the_demo_still_trains_in_a_process_of_its_own(engine, demo, session, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: started.append(args) or type("P", (), {"pid": 7})())
    result = CliRunner().invoke(cli, ["demo", "--tickets", "1500", "--teacher-size", "tiny", "--no-showcase"])
    assert result.exit_code == 0, result.output
    job = session.exec(select(Job).where(Job.kind == demo_mod.SETUP_JOB)).one()
    assert started and started[0][-3:] == ["jobs", "run", str(job.id)]
    assert f"The demo teacher trains in the background as job #{job.id}" in result.stdout
