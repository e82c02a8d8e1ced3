"""The service in-process with a stand-in student and teacher: answers, clear 400 sentences, 503 over the
concurrency limit, and one log line per request, written before the answer leaves."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import httpx
import numpy as np
import pytest

from core.domain.rollout_state import RolloutState
from core.serving.app import Service, build_app
from core.serving.requestlog import RequestLog, host_name
from core.teacher.outputs import Prediction

LABELS = ["billing", "technical", "account"]


class KeywordStudent:
    labels = LABELS

    def predict_proba(self, texts):
        out = np.full((len(texts), 3), 0.05, dtype=np.float32)
        for i, t in enumerate(texts):
            k = next((j for j, w in enumerate(["invoice", "crash", "login"]) if w in t), 0)
            out[i, k] = 0.9 if "unsure" not in t else 0.4
        return out


class SlowTeacher:
    name = "fake"

    def __init__(self, delay_s: float = 0.0):
        self.delay_s, self.calls = delay_s, 0
        self.lock = threading.Lock()

    def predict(self, texts, *, labels):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return [Prediction(label="technical", confidence=0.8, probs=None, raw="technical") for _ in texts]


def service(tmp_path, *, stage="100", max_concurrency=8, teacher=None, **state) -> Service:
    st = RolloutState(stage=stage, threshold=0.5, must_escalate=state.get("must", []),
                      teacher_sample_rate=state.get("sample", 0.0))
    return Service(project_id=1, state=st, student=KeywordStudent(), teacher=teacher or SlowTeacher(),
                   teacher_labels=LABELS, log=RequestLog(tmp_path / "serving"), max_concurrency=max_concurrency,
                   max_chars=50, escalate_to=state.get("escalate_to", "teacher"))


def call(svc: Service, *requests: dict | bytes) -> list[httpx.Response]:
    async def go():
        transport = httpx.ASGITransport(app=build_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*[
                client.post("/v1/classify", content=r) if isinstance(r, bytes) else client.post("/v1/classify", json=r)
                for r in requests])
    return asyncio.run(go())


def log_lines(tmp_path) -> list[dict]:
    return [json.loads(line) for f in sorted((tmp_path / "serving").glob("requests-*.jsonl"))
            for line in f.read_text().splitlines()]


def test_a_confident_answer_comes_from_the_student_and_is_logged(tmp_path):
    [r] = call(service(tmp_path), {"text": "my invoice is wrong", "id": "a1", "slices": {"queue": "billing"}})
    assert r.status_code == 200
    body = r.json()
    assert body == {"label": "billing", "confidence": pytest.approx(0.9), "served_by": "student", "stage": "100",
                    "request_id": "a1"}
    [line] = log_lines(tmp_path)
    assert line["request_id"] == "a1" and line["slices"] == {"queue": "billing"} and line["reason"] == "confident"
    assert line["input_chars"] == 19 and len(line["input_sha256"]) == 64 and line["teacher_asked"] is False
    assert line["teacher_label"] is None and line["latency_ms"] >= 0 and line["ts"].endswith("+00:00")


def test_below_the_threshold_the_teacher_answers_and_both_answers_are_logged(tmp_path):
    [r] = call(service(tmp_path), {"text": "unsure invoice"})
    assert r.json()["served_by"] == "teacher" and r.json()["label"] == "technical"
    [line] = log_lines(tmp_path)
    assert (line["student_label"], line["teacher_label"], line["reason"]) == ("billing", "technical",
                                                                                "below-threshold")


def test_must_escalate_to_a_queue_returns_no_label(tmp_path):
    [r] = call(service(tmp_path, must=["account"], escalate_to="queue"), {"text": "login fails"})
    assert r.json()["served_by"] == "queue" and r.json()["label"] is None


@pytest.mark.parametrize(("body", "fld", "words"), [
    (b"{not json", "body", "not valid JSON"),
    (b'["a list"]', "body", "JSON object"),
    ({"id": "x"}, "text", "field text is missing"),
    ({"text": 42}, "text", "field text must be a string, not int"),
    ({"text": ""}, "text", "field text is empty"),
    ({"text": "x" * 51}, "text", "over the limit of 50"),
    ({"text": "ok", "slices": ["queue"]}, "slices", "field slices must be an object"),
    ({"text": "ok", "colour": "red"}, "colour", "field colour is not known"),
])
def test_malformed_requests_get_400_and_one_sentence_naming_the_field(tmp_path, body, fld, words):
    [r] = call(service(tmp_path), body)
    assert r.status_code == 400
    assert r.json()["field"] == fld and words in r.json()["error"] and r.json()["error"].endswith(".")
    assert log_lines(tmp_path) == []


def test_over_the_concurrency_limit_requests_are_refused_with_503(tmp_path):
    svc = service(tmp_path, stage="shadow", max_concurrency=2, teacher=SlowTeacher(delay_s=0.3))
    responses = call(svc, *[{"text": f"crash {i}"} for i in range(5)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503, 503]
    refused = next(r for r in responses if r.status_code == 503)
    assert "answering 2 requests already" in refused.json()["error"]
    assert len(log_lines(tmp_path)) == 2


def test_health_reports_stage_model_and_uptime(tmp_path):
    async def go():
        transport = httpx.ASGITransport(app=build_app(service(tmp_path, stage="25")))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/health")
    body = asyncio.run(go()).json()
    assert body["stage"] == "25" and body["percent"] == 25 and body["uptime_s"] >= 0 and "model" in body


def test_the_log_switches_to_a_new_file_each_utc_day(tmp_path):
    from datetime import UTC, datetime

    log = RequestLog(tmp_path)
    log.write({"request_id": "a"}, now=datetime(2025, 1, 1, 23, 59, tzinfo=UTC))
    log.write({"request_id": "b"}, now=datetime(2025, 1, 2, 0, 0, tzinfo=UTC))
    log.close()
    writer = f"{host_name()}-{os.getpid()}"  # one file per process and day (issue 18)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"requests-20250101-{writer}.jsonl",
                                                          f"requests-20250102-{writer}.jsonl"]
