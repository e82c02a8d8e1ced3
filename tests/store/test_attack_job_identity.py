"""Attacks on who runs a job (issue 16): ``stillroom jobs run N`` writes the job's events in the name of the
person who submitted it, so only that person (proven as every CLI command proves a person) or the process
Stillroom started for the job (holding the job's one-time credential) may run it. With
STILLROOM_CLI_REQUIRE_TOKEN nobody runs a job by naming themselves, let alone by naming no one."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from core.access import tokens
from core.cli import cli
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job

CREDENTIAL_ENV = "STILLROOM_JOB_CREDENTIAL"  # where the detached runner finds its job's credential


@pytest.fixture
def audited_kind():
    @jobs.handler("test-audited")
    def work(ctx):
        return {"ran": True}

    yield "test-audited"
    jobs.HANDLERS.pop("test-audited")


@pytest.fixture
def require_token(monkeypatch):
    monkeypatch.setenv("STILLROOM_CLI_REQUIRE_TOKEN", "1")
    monkeypatch.delenv("STILLROOM_TOKEN", raising=False)
    monkeypatch.delenv(CREDENTIAL_ENV, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def danas_job(session, demo, moderation, audited_kind):
    return jobs.submit(session, actor=demo["dana"], project=moderation, kind=audited_kind, params={})


def run(*args: str, env: dict | None = None):
    get_settings.cache_clear()
    return CliRunner().invoke(cli, list(args), env=env)


def _state(engine, job_id: int) -> tuple[str, list[str]]:
    with Session(engine) as s:
        events = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.entity == "job",
                                                                     AuditEvent.entity_id == str(job_id)))]
        return s.get(Job, job_id).status, events


def _token(session, user) -> str:
    return tokens.create_cli_token(session, user=user, name="laptop").secret


def test_without_a_token_nobody_runs_a_job_in_its_owners_name(engine, danas_job, require_token):
    refused = run("jobs", "run", str(danas_job.id))
    assert refused.exit_code == 2 and "requires a personal API token" in refused.stderr
    declared = run("--as", "dana", "jobs", "run", str(danas_job.id))  # naming the owner proves nothing
    assert declared.exit_code == 2 and "requires a personal API token" in declared.stderr
    assert _state(engine, danas_job.id) == ("queued", ["job.submit"])


def test_another_persons_token_cannot_run_the_job(session, engine, demo, danas_job, require_token):
    refused = run("jobs", "run", str(danas_job.id), env={"STILLROOM_TOKEN": _token(session, demo["val"])})
    assert refused.exit_code == 3 and "submitted by 'dana'" in refused.stderr
    assert _state(engine, danas_job.id) == ("queued", ["job.submit"])


def test_the_owners_token_runs_her_job(session, engine, demo, danas_job, require_token):
    done = run("jobs", "run", str(danas_job.id), env={"STILLROOM_TOKEN": _token(session, demo["dana"])})
    assert done.exit_code == 0, done.output
    assert _state(engine, danas_job.id) == ("done", ["job.submit", "job.done"])


def test_the_detached_runner_holds_a_one_time_credential_for_its_job_only(session, engine, demo, moderation,
                                                                          danas_job, audited_kind, require_token,
                                                                          monkeypatch):
    started = {}
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: started.update(kw) or type("P", (), {"pid": 1})())
    jobs.start_detached(danas_job.id)
    credential = started["env"][CREDENTIAL_ENV]
    with Session(engine) as s:
        assert credential not in str(s.get(Job, danas_job.id).model_dump())  # stored hashed
    other = jobs.submit(session, actor=demo["dana"], project=moderation, kind=audited_kind, params={})
    misused = run("jobs", "run", str(other.id), env={CREDENTIAL_ENV: credential})
    assert misused.exit_code == 2 and "credential" in misused.stderr
    assert _state(engine, other.id) == ("queued", ["job.submit"])
    done = run("jobs", "run", str(danas_job.id), env={CREDENTIAL_ENV: credential})
    assert done.exit_code == 0, done.output
    assert _state(engine, danas_job.id) == ("done", ["job.submit", "job.done"])
    with Session(engine) as s:  # used up: a failed job resumed later needs a new start
        job = s.get(Job, danas_job.id)
        job.status = "failed"
        s.add(job)
        s.commit()
    again = run("jobs", "run", str(danas_job.id), env={CREDENTIAL_ENV: credential})
    assert again.exit_code == 2 and _state(engine, danas_job.id)[0] == "failed"


def test_the_app_started_runner_finishes_the_job_under_the_token_requirement(session, engine, demo, require_token):
    """The real detached process: no personal token in its environment, only the job's credential."""
    import time

    from teacher_helpers import FakeChatServer, make_dataset, routing, ticket_rows

    from core.teacher import runs

    dataset = make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(6))
    with FakeChatServer() as server:
        job = runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                             adapter="http", config={"model": "m", "base_url": server.base_url, "backoff_s": 0.01})
        runs.start_detached(job.id, api_key="sk-test-key-for-the-detached-runner")
        deadline = time.monotonic() + 90
        while _state(engine, job.id)[0] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.3)
    status, events = _state(engine, job.id)
    assert status == "done" and events == ["job.submit", "job.done"]
