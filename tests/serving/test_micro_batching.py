"""Micro-batching: concurrent requests share model calls, and every caller still gets its own answer, the one it
would have had alone."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from test_serve_app import LABELS, SlowTeacher, call, log_lines, service

from core.serving.batching import Batcher


class CountingStudent:
    """A stand-in transformer: each text's probabilities depend on the text alone; counts its calls."""

    labels = LABELS
    family = "transformer"

    def __init__(self):
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict_proba(self, texts, *, batch_size: int = 64):
        with self.lock:
            self.calls.append(len(texts))
        out = np.empty((len(texts), 3), dtype=np.float32)
        for i, t in enumerate(texts):
            k = sum(map(ord, t)) % 3
            out[i] = 0.2 / 2
            out[i, k] = 0.6 + (len(t) % 30) / 100  # a confidence unique enough to tell answers apart
        return out


def _ask(batcher: Batcher, texts: list[str]) -> list:
    async def go():
        return await asyncio.gather(*[batcher(t) for t in texts])
    return asyncio.run(go())


def test_concurrent_callers_share_calls_and_each_gets_its_own_row():
    student = CountingStudent()
    texts = [f"text number {i} " + "x" * i for i in range(20)]
    batcher = Batcher(student.predict_proba, max_batch=32, max_wait_s=0.05)
    rows = _ask(batcher, texts)
    alone = [student.predict_proba([t])[0] for t in texts]
    assert all(np.array_equal(r, a) for r, a in zip(rows, alone, strict=True))
    assert batcher.stats.calls < len(texts) and batcher.stats.texts == len(texts)


def test_no_batch_is_larger_than_max_batch():
    student = CountingStudent()
    batcher = Batcher(student.predict_proba, max_batch=8, max_wait_s=0.01)
    rows = _ask(batcher, [f"t{i}" for i in range(30)])
    assert len(rows) == 30 and max(student.calls) == 8 and sum(student.calls) == 30
    assert batcher.stats.largest == 8


def test_a_failing_call_fails_each_caller_of_that_batch():
    def broken(texts):
        raise RuntimeError("model fell over")

    async def go():
        return await asyncio.gather(*[Batcher(broken)(t) for t in ("a", "b")], return_exceptions=True)
    assert [str(e) for e in asyncio.run(go())] == ["model fell over", "model fell over"]


@pytest.mark.parametrize("max_batch", [1, 32])
def test_batched_service_answers_each_request_as_one_by_one_does(tmp_path, max_batch):
    texts = [f"request {i} about {w}" for i, w in enumerate(["invoice", "crash", "login"] * 6)]
    alone = service(tmp_path / "alone")
    alone.student = CountingStudent()
    expected = [r.json() for r in call(alone, *[{"text": t, "id": f"r{i}"} for i, t in enumerate(texts)])]
    batched = service(tmp_path / "batched", max_concurrency=64)
    batched.student = CountingStudent()
    batched.student_batcher = Batcher(batched.student.predict_proba, max_batch=max_batch, max_wait_s=0.02)
    got = [r.json() for r in call(batched, *[{"text": t, "id": f"r{i}"} for i, t in enumerate(texts)])]
    assert got == expected
    assert len(batched.student.calls) < len(texts) if max_batch > 1 else max(batched.student.calls) == 1
    logged = {x["request_id"]: x["student_confidence"] for x in log_lines(tmp_path / "batched")}
    assert logged == {a["request_id"]: pytest.approx(a["confidence"], abs=1e-6) for a in expected}


def test_teacher_calls_of_concurrent_requests_share_a_batch(tmp_path):
    teacher = SlowTeacher(delay_s=0.05)
    svc = service(tmp_path, stage="shadow", max_concurrency=64, teacher=teacher)
    svc.teacher_batcher = Batcher(lambda texts: teacher.predict(texts, labels=LABELS), max_batch=32,
                                  max_wait_s=0.02)
    responses = call(svc, *[{"text": f"crash {i}"} for i in range(12)])
    assert [r.json()["served_by"] for r in responses] == ["teacher"] * 12
    assert teacher.calls < 12 and svc.batching()["teacher"]["texts"] == 12
