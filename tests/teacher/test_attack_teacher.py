"""Attacks through the chat teacher's settings (issue 11): a driver naming a server secret as the key variable or
a host of their own as the endpoint; an endpoint echoing the key into its error; answers reused across changed
requests. A fake endpoint on 127.0.0.1 plays the attacker's host."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import select
from teacher_helpers import FakeChatServer, make_dataset, routing, ticket_rows

from core.domain.errors import GovernanceViolation
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, Job
from core.teacher import chat, runs

SERVER_SECRET = "s3rv3r-only-secret-0123456789abcdef0123456789"
KEY = "sk-live-teacher-key-0123456789abcdef"


@pytest.fixture
def dataset(session, demo):
    return make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(6))


class EchoingEndpoint:
    """An endpoint that answers 400 with the request's Authorization header in its body, and counts calls."""

    def __init__(self, body=None, status: int = 400):
        self.calls, self.seen = 0, []
        outer, answer = self, body

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls += 1
                outer.seen.append(self.headers.get("Authorization"))
                body = (answer(self.headers.get("Authorization")) if answer else json.dumps(
                    {"error": f"bad model; you sent {self.headers.get('Authorization')} api_key={KEY}"})).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(base_url: str | None = None, **extra) -> dict:
    return {"model": "m", **({"base_url": base_url} if base_url else {}), "backoff_s": 0.01, "max_retries": 0,
            **extra}


def _start(session, demo, dataset, config):
    return runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                          adapter="http", config=config)


def _run_on_approved(session, engine, demo, dataset, monkeypatch, endpoint: EchoingEndpoint) -> Job:
    """A teacher run against ``endpoint``, which the admin approved, with the key set; the finished job."""
    monkeypatch.setenv("STILLROOM_TEACHER_API_KEY", KEY)
    monkeypatch.setenv("STILLROOM_TEACHER_ENDPOINTS", endpoint.base_url)
    get_settings.cache_clear()
    try:
        return jobs.run(_start(session, demo, dataset, _config(endpoint.base_url)).id, engine=engine)
    finally:
        endpoint.close()
        get_settings.cache_clear()


def test_a_key_variable_off_the_allow_list_is_refused_before_anything_is_sent(session, demo, dataset,
                                                                               monkeypatch):
    monkeypatch.setenv("DATABASE_PASSWORD_FOR_TEST", SERVER_SECRET)
    with FakeChatServer() as server, pytest.raises(GovernanceViolation, match="not on the admin's list"):
        _start(session, demo, dataset, _config(server.base_url, api_key_env="DATABASE_PASSWORD_FOR_TEST"))
    assert server.calls == 0 and server.auth_headers == set()
    assert session.exec(select(Job)).all() == []


def test_an_endpoint_off_the_allow_list_never_receives_the_key(session, engine, demo, dataset, monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_API_KEY", KEY)
    attacker = EchoingEndpoint()
    try:
        with FakeChatServer():  # the admin approved this endpoint only
            with pytest.raises(GovernanceViolation, match="not on the admin's list"):
                _start(session, demo, dataset, _config(attacker.base_url))
            # Through the base-URL variable the check happens when the job runs, and names no value.
            monkeypatch.setenv("STILLROOM_TEACHER_BASE_URL", attacker.base_url)
            job = _start(session, demo, dataset, _config())
            done = jobs.run(job.id, engine=engine)
    finally:
        attacker.close()
    assert attacker.calls == 0
    assert done.status == "failed" and "$STILLROOM_TEACHER_BASE_URL is not on the admin's list" in done.error
    assert attacker.base_url not in done.error


def test_a_key_echoed_in_an_error_body_stays_out_of_the_job_and_the_audit_log(session, engine, demo, dataset,
                                                                              monkeypatch):
    echo = EchoingEndpoint()
    done = _run_on_approved(session, engine, demo, dataset, monkeypatch, echo)
    assert echo.seen and echo.seen[0] == f"Bearer {KEY}"  # the approved endpoint did get the key
    assert done.status == "failed" and "HTTP 400" in done.error
    events = " ".join(e.payload for e in session.exec(select(AuditEvent)).all())
    assert KEY not in done.error and KEY not in events and KEY[:12] not in events


def _disguised(auth: str) -> str:
    """The key as an endpoint might echo it past a redactor: reversed, and cut in two with a space between."""
    key = auth.removeprefix("Bearer ")
    return json.dumps({"error": {"message": f"no such model (key {key[::-1]}; {key[:18]} {key[18:]})"}})


@pytest.mark.parametrize(("status", "body"), [
    (400, _disguised), (500, _disguised),
    (200, lambda auth: _disguised(auth)[:-1]),  # a 200 that is not a chat completion (nor JSON)
])
def test_a_key_echoed_reversed_or_split_leaves_no_trace_in_job_logs_or_audit(session, engine, demo, dataset,
                                                                            monkeypatch, caplog, capfd, status, body):
    echo = EchoingEndpoint(body, status)
    done = _run_on_approved(session, engine, demo, dataset, monkeypatch, echo)
    assert echo.calls >= 1 and done.status == "failed" and f"HTTP {status}" in done.error
    events = " ".join(e.payload for e in session.exec(select(AuditEvent)).all())
    printed = capfd.readouterr()
    for trace in (done.error, done.message, events, caplog.text, printed.out + printed.err):
        for piece in (KEY[::-1][:12], KEY[:18], KEY[18:], "no such model"):
            assert piece not in trace


@pytest.mark.parametrize("change", [{"temperature": 0.7}, {"max_tokens": 64}, {"logprobs": False},
                                    {"top_logprobs": 2}, {"model": "other-model"}, {"base_url": "http://b/v1"},
                                    {"prompt": "another prompt"}])
def test_the_cache_never_answers_a_changed_request(change):
    base = {"model": "m", "temperature": 0.0, "max_tokens": 16, "logprobs": True, "top_logprobs": 5}
    cfg = chat.ChatConfig(**base)
    key = chat.request_key(cfg, "http://a/v1", "prompt")
    changed = chat.ChatConfig(**{**base, **{k: v for k, v in change.items() if k not in ("base_url", "prompt")}})
    other = chat.request_key(changed, change.get("base_url", "http://a/v1"), change.get("prompt", "prompt"))
    assert other != key
    assert chat.request_key(cfg, "http://a/v1/", "prompt") == key  # the same request, written differently


def test_a_rerun_at_another_temperature_asks_the_endpoint_again(session, engine, demo, dataset, monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_API_KEY", KEY)
    with FakeChatServer() as server:
        jobs.run(_start(session, demo, dataset, _config(server.base_url)).id, engine=engine)
        first = server.calls
        jobs.run(_start(session, demo, dataset, _config(server.base_url, temperature=0.7)).id, engine=engine)
    assert first == 6 and server.calls == 12


@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.example.com/v1", True), ("HTTPS://API.example.com/v1/", True),
    ("https://attacker@api.example.com/v1", False), ("https://api.example.com/v1?to=evil.example", False),
    ("https://api.example.com.evil.example/v1", False), ("https://api.example.com/v1/../../steal", False),
])
def test_only_the_listed_endpoint_itself_passes_the_allow_list(url, ok, monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_ENDPOINTS", "https://api.example.com/v1")
    get_settings.cache_clear()
    try:
        if ok:
            assert chat.check_endpoint(url) == "https://api.example.com/v1"
        else:
            with pytest.raises(GovernanceViolation):
                chat.check_endpoint(url)
    finally:
        get_settings.cache_clear()
