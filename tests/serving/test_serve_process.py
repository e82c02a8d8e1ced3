"""``stillroom serve`` as a real process on 127.0.0.1, called over HTTP: shadow and 100 % routing, the request
log, a log that survives SIGKILL, and the refusal to serve without a rollout stage."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest
from serve_helpers import REPO, Server, shipped, start_stage

from core.serving.requestlog import log_dir

TEXTS = ["please refund the invoice today", "the app crash again since monday", "reset my password login",
         "charge twice on my payment", "timeout error in the phone app"]


@pytest.fixture
def shipped_eval(session, engine, demo, gated, tmp_path):
    return shipped(session, engine, demo, gated, tmp_path)


def _lines(project_id: int) -> list[dict]:
    return [json.loads(line) for f in sorted(log_dir(project_id).glob("requests-*.jsonl"))
            for line in f.read_text().splitlines()]


def _classify(server: Server, n: int) -> list[dict]:
    with httpx.Client(base_url=server.url, timeout=10, headers=server.headers) as client:
        out = []
        for i in range(n):
            r = client.post("/v1/classify", json={"text": TEXTS[i % len(TEXTS)], "id": f"r{i}",
                                                  "slices": {"queue": "billing"}})
            assert r.status_code == 200, r.text
            out.append(r.json())
        return out


def test_shadow_serves_the_teacher_and_logs_the_student_beside_it(session, demo, gated, shipped_eval):
    start_stage(session, actor=demo["oscar"], evaluation=shipped_eval, stage="shadow")
    server = Server(gated.name).wait()
    try:
        health = httpx.get(f"{server.url}/health").json()
        assert health["stage"] == "shadow" and health["model"]["training_run_id"] == shipped_eval.training_run_id
        answers = _classify(server, 6)
        bad = httpx.post(f"{server.url}/v1/classify", content=b'{"text": 5}', headers=server.headers)
    finally:
        server.stop()
    assert {a["served_by"] for a in answers} == {"teacher"} and {a["stage"] for a in answers} == {"shadow"}
    assert bad.status_code == 400 and bad.json()["error"] == "field text must be a string, not int."
    lines = _lines(gated.id)
    assert [x["request_id"] for x in lines] == [f"r{i}" for i in range(6)]
    assert all(x["teacher_asked"] and x["teacher_label"] and x["student_label"] and x["reason"] == "shadow"
               for x in lines)


def test_at_100_percent_the_confident_student_serves(session, demo, gated, shipped_eval):
    start_stage(session, actor=demo["oscar"], evaluation=shipped_eval, stage="100", threshold=0.0,
                settings={"teacher_sample_rate": 0.0, "must_escalate": []})
    server = Server(gated.name).wait()
    try:
        answers = _classify(server, 10)
    finally:
        server.stop()
    assert {a["served_by"] for a in answers} == {"student"}
    assert [a["label"] for a in answers[:3]] == ["billing", "technical", "account"]
    lines = _lines(gated.id)
    assert len(lines) == 10 and {x["reason"] for x in lines} == {"confident"}


def test_every_answered_request_is_in_the_log_after_sigkill(session, demo, gated, shipped_eval):
    start_stage(session, actor=demo["oscar"], evaluation=shipped_eval, stage="100", threshold=0.0)
    server = Server(gated.name).wait()
    try:
        answers = _classify(server, 50)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    logged = {x["request_id"] for x in _lines(gated.id)}
    assert {a["request_id"] for a in answers} <= logged and len(logged) == 50


def test_serving_without_a_rollout_stage_is_refused_with_exit_3(session, demo, gated, shipped_eval):
    done = subprocess.run([sys.executable, "-m", "core.cli", "--as", "oscar", "serve", gated.name, "--port", "9"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "no rollout stage in force" in done.stderr
