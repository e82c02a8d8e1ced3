"""The chat-completions teacher against a real HTTP server on 127.0.0.1: parsing, log-probabilities,
retries, concurrency, the on-disk cache, the budget cap, and an API key that is never stored."""

from __future__ import annotations

import math

import pytest
from sqlmodel import select
from teacher_helpers import LABELS, FakeChatServer, make_dataset, routing, ticket_rows

from core.domain.errors import InvalidInput
from core.store import jobs
from core.store.artifacts import data_dir
from core.store.models import Job, TeacherRun
from core.teacher import runs
from core.teacher.chat import label_distribution, parse_label
from core.teacher.filter import kept_outputs

KEY = "sk-test-9f8e7d6c5b4a-never-store-me"


@pytest.fixture
def dataset(session, demo):
    df = ticket_rows(30)
    df.loc[4, "text"] = "a mystery question about nothing in particular"
    return make_dataset(session, actor=demo["dana"], project=routing(session), df=df)


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_API_KEY", KEY)


def http_config(server, **extra) -> dict:
    return {"model": "fake-teacher", "base_url": server.base_url, "backoff_s": 0.01, "concurrency": 4, **extra}


def run_http(session, engine, demo, dataset, config) -> Job:
    job = runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                         adapter="http", config=config)
    return jobs.run(job.id, engine=engine)


def latest_run(session) -> TeacherRun:
    session.expire_all()
    return session.exec(select(TeacherRun).order_by(TeacherRun.id.desc())).first()


def test_answers_are_parsed_to_labels_with_a_distribution_from_logprobs(session, engine, demo, dataset, key_env):
    with FakeChatServer() as server:
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "done", job.error
    run = latest_run(session)
    out = kept_outputs(session, filter_or_run=run).set_index("id")
    assert out.loc["T0000", "label"] == "billing" and out.loc["T0001", "label"] == "technical"
    assert out.loc["T0000", "probs"].tolist() == pytest.approx([0.8 / 0.95, 0.15 / 0.95, 0.0])
    assert out.loc["T0000", "confidence"] == pytest.approx(0.8 / 0.95)
    assert out.loc["T0000", "raw"] == "Billing."
    assert run.stats["n_unparseable"] == 1 and "T0004" not in out.index
    assert server.calls == 30 and server.auth_headers == {f"Bearer {KEY}"}
    sent = server.requests[0]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 5 and sent["model"] == "fake-teacher"
    assert "billing, technical, account" in sent["messages"][0]["content"]


def test_a_rerun_is_answered_from_the_cache_without_any_call(session, engine, demo, dataset, key_env):
    with FakeChatServer() as server:
        run_http(session, engine, demo, dataset, http_config(server))
        first = server.calls
        job = run_http(session, engine, demo, dataset, http_config(server))
        assert job.status == "done" and server.calls == first
    assert latest_run(session).stats["http"]["cache_hits"] == 30


def test_429_is_retried_with_backoff_and_the_run_completes(session, engine, demo, dataset, key_env):
    with FakeChatServer(fail_first=3, fail_status=429) as server:
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "done", job.error
    assert server.calls == 33 and latest_run(session).stats["http"]["retries"] == 3


def test_a_server_that_keeps_failing_fails_the_job_with_a_sentence(session, engine, demo, dataset, key_env):
    with FakeChatServer(always_status=503) as server:
        job = run_http(session, engine, demo, dataset, http_config(server, max_retries=2, concurrency=1))
    assert job.status == "failed" and "still answered HTTP 503 after 3 tries" in job.error
    assert server.calls == 3  # the first failure stops the others


def test_concurrency_limit_caps_requests_in_flight(session, engine, demo, dataset, key_env):
    with FakeChatServer(delay_s=0.02) as server:
        run_http(session, engine, demo, dataset, http_config(server, concurrency=2))
    assert server.max_in_flight == 2


def test_the_api_key_is_never_stored(session, engine, demo, dataset, key_env, tmp_path):
    with FakeChatServer(fail_first=1) as server:
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "done"
    assert "api_key" not in str(latest_run(session).config).replace("api_key_env", "")
    engine.dispose()  # let SQLite write everything to its files before reading them
    files = [p for p in tmp_path.rglob("*") if p.is_file()] + [p for p in data_dir().rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".sqlite" for p in files)
    leaked = [p for p in files if KEY.encode() in p.read_bytes()]
    assert leaked == []


def test_the_budget_cap_stops_the_run_and_keeps_what_was_paid_for(session, engine, demo, dataset, key_env):
    # About 40 input tokens a prompt at 1.0 per 1k: a cap of 0.4 pays for about ten calls.
    priced = {"price_in_per_1k": 1.0, "price_out_per_1k": 0.0, "concurrency": 1}
    with FakeChatServer() as server:
        config = http_config(server, **priced, max_cost=0.4)
        estimate = runs.estimate_cost(session, project=routing(session), dataset_id=dataset.id, config=config)
        assert (estimate.calls, estimate.cached) == (30, 0) and estimate.cost > 0.4 and not estimate.within_budget
        job = run_http(session, engine, demo, dataset, config)
        assert job.status == "failed" and "stopped at its budget cap of 0.40" in job.error
        paid = server.calls
        assert 5 <= paid < 30 and latest_run(session) is None
        after = runs.estimate_cost(session, project=routing(session), dataset_id=dataset.id, config=config)
        assert (after.cached, after.calls) == (paid, 30 - paid)
        job = run_http(session, engine, demo, dataset, http_config(server, **priced, max_cost=100))
        assert job.status == "done" and server.calls == 30


def test_without_an_api_key_the_job_fails_naming_the_variable(session, engine, demo, dataset, monkeypatch):
    monkeypatch.delenv("STILLROOM_TEACHER_API_KEY", raising=False)
    with FakeChatServer() as server:
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "failed" and "set $STILLROOM_TEACHER_API_KEY" in job.error and server.calls == 0


def test_a_key_from_the_caller_reaches_the_job_without_the_environment(session, engine, demo, dataset, monkeypatch):
    monkeypatch.delenv("STILLROOM_TEACHER_API_KEY", raising=False)
    with FakeChatServer() as server, runs.api_key_scope("from-streamlit-secrets"):
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "done" and server.auth_headers == {"Bearer from-streamlit-secrets"}


def test_a_refused_key_names_the_variable_not_the_key(session, engine, demo, dataset, key_env):
    with FakeChatServer(always_status=401) as server:
        job = run_http(session, engine, demo, dataset, http_config(server))
    assert job.status == "failed" and "refused the API key" in job.error and KEY not in job.error
    assert server.calls >= 1


def test_without_logprobs_the_label_is_kept_without_a_distribution(session, engine, demo, dataset, key_env):
    with FakeChatServer(logprobs=False) as server:
        run_http(session, engine, demo, dataset, http_config(server))
    out = kept_outputs(session, filter_or_run=latest_run(session))
    assert out["probs"].isna().all() and out["confidence"].isna().all() and len(out) == 29


def test_a_template_without_placeholders_is_refused(session, demo, dataset):
    with pytest.raises(InvalidInput, match=r"lacks \{text\}"):
        runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                       adapter="http", config={"model": "m", "prompt_template": "Classify into {labels}."})


@pytest.mark.parametrize(("answer", "label"), [
    ("billing", "billing"), ("BILLING", "billing"), ("  'Technical'.", "technical"),
    ("The ticket is about their account, not billing.", "account"), ("no idea", None), ("billings", None),
])
def test_answers_are_read_exactly_then_case_insensitively_then_by_first_mention(answer, label):
    assert parse_label(answer, LABELS) == label


def test_a_distribution_needs_tokens_that_name_a_label():
    lp = {"content": [{"token": " ", "logprob": 0.0},
                      {"token": "tech", "logprob": -0.1, "top_logprobs": [
                          {"token": "tech", "logprob": math.log(0.6)}, {"token": "bill", "logprob": math.log(0.2)},
                          {"token": "Sure", "logprob": math.log(0.2)}]}]}
    assert label_distribution(lp, LABELS) == pytest.approx([0.25, 0.75, 0.0])
    assert label_distribution({"content": [{"token": "Sure", "logprob": 0.0, "top_logprobs": []}]}, LABELS) is None
    assert label_distribution(None, LABELS) is None


def test_a_detached_job_gets_the_callers_key_only_through_its_environment(session, engine, demo, dataset,
                                                                        monkeypatch, tmp_path):
    import time

    monkeypatch.delenv("STILLROOM_TEACHER_API_KEY", raising=False)
    with FakeChatServer() as server:
        job = runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                             adapter="http", config=http_config(server))
        runs.start_detached(job.id, api_key=KEY)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            session.expire_all()
            if session.get(Job, job.id).status in ("done", "failed"):
                break
            time.sleep(0.3)
    finished = session.get(Job, job.id)
    assert finished.status == "done", finished.error
    assert server.auth_headers == {f"Bearer {KEY}"}
    engine.dispose()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
