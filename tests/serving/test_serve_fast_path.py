"""Issue 18, the service's per-request shortcuts, each attacked against the definition it replaces: the usual body
read by orjson against ClassifyRequest's validation, the body deadline kept by one timer against asyncio.timeout,
the log line written by orjson against json, the bucket from the hash the log takes anyway, the n-gram's label
scores against its torch module, and the worker's heap frozen out of the garbage collector's sight."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from starlette.responses import JSONResponse

from core.ml.ngram_array import ArrayNgram
from core.ml.students import NgramStudent
from core.serving import app as app_mod
from core.serving import router
from core.serving.app import BodyDeadlines, Refused, read_body
from core.serving.requestlog import RequestLog
from core.serving.worker import settle_heap

BODIES = [
    b'{"text": "please refund the invoice"}', b'{"text":"x","id":"req-1","slices":{"queue":"billing","n":3}}',
    b'{"text":"a","text":"b"}', b'{"text":"x","slices":{"a":"b","a":"c"}}', b' {"text":"x"} ', b'{"text":"x"}\n',
    b'{"text":"caf\xc3\xa9 na\xc3\xafve"}', b'{"text":"\\ud83d\\ude00"}', b'{"text":"x\\u0000"}',
    b'{"text":"x","id":null}',
    b'{"text":"x","slices":null}', b'{"text":"x","slices":{}}', b'{"text":"x","slices":{"":1}}',
    b'{"text":"x","slices":{"a":1.0,"b":-0.0,"c":1E2,"d":true,"e":false}}',
    b'{"text":"x","slices":{"a":18446744073709551615}}', b'{"text":"x","slices":{"a":-9223372036854775809}}',
    b'{"text":"x","slices":{"a":123456789012345678901234567890}}', b'{"text":"x","slices":{"a":NaN}}',
    b'{"text":"x","slices":{"a":1e999}}', b'{"text":"x","slices":{"a":null}}', b'{"text":"x","slices":{"a":[1]}}',
    b'{"text":"x","slices":[]}', b'{"text":"\\ud800"}', b'\xef\xbb\xbf{"text":"x"}', b'{"text":"\xff"}', b'{"text":""}',
    b'{"text":"x","id":""}', b'{"text":"x","id":"' + b"i" * 200 + b'"}', b'{"text":"x","id":"' + b"i" * 201 + b'"}',
    b'{"text":"x","id":7}', b'{"text":7}', b'{"text":null}', b'{}', b'[]', b'"x"', b'null', b'{"text":"x","extra":1}',
    b'{"text":"x"} trailing', b'{"text":"x",}', b'{not json', b'', b'{"text":"' + b"y" * 101 + b'"}',
]


def _answer(got) -> tuple:
    if isinstance(got, JSONResponse):
        return ("refused", got.status_code, json.loads(got.body))
    slices = got.slices or {}
    return ("request", got.text, got.id, repr(slices), [type(v) for v in slices.values()])  # repr: NaN == NaN


@pytest.mark.parametrize("body", BODIES)
def test_the_usual_body_is_read_as_the_model_reads_it_and_every_refusal_is_the_models(body, monkeypatch):
    fast = _answer(app_mod._parse(body, 100))
    monkeypatch.setattr(app_mod, "_usual", lambda _body: None)  # the model's validation alone
    assert fast == _answer(app_mod._parse(body, 100))


def test_the_common_bodies_take_the_shortcut():
    assert app_mod._usual(b'{"text":"x","id":"r","slices":{"queue":"billing","tier":2,"vip":true}}') == (
        "x", "r", {"queue": "billing", "tier": 2, "vip": True})
    assert app_mod._usual(b'{"text":"x","slices":{"a":123456789012345678901234567890}}') is None  # read as a float


class _Service:
    max_body_bytes, max_chars = 4096, 100

    def __init__(self, timeout_s: float):
        self.read_timeout_s = timeout_s


def _receiver(*messages: dict, then_wait: bool = False):
    queue = list(messages)

    async def receive() -> dict:
        if queue:
            return queue.pop(0)
        if then_wait:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def test_a_body_late_past_its_deadline_gets_408_and_a_whole_one_passes():
    async def go():
        deadlines = BodyDeadlines()
        whole = await read_body(_Service(0.2), _receiver({"type": "http.request", "body": b"ab", "more_body": True},
                                                         {"type": "http.request", "body": b"c"}), None,
                                deadlines=deadlines)
        start = time.monotonic()
        with pytest.raises(Refused) as late:
            await read_body(_Service(0.2), _receiver({"type": "http.request", "body": b"{", "more_body": True},
                                                     then_wait=True), None, deadlines=deadlines)
        took = time.monotonic() - start
        assert not asyncio.current_task().cancelling()  # the deadline's cancellation was taken back
        return whole, late.value, took, deadlines

    whole, late, took, deadlines = asyncio.run(go())
    assert whole == b"abc" and (late.status, late.field) == (408, "body") and "within 0.2 s" in late.sentence
    assert 0.2 <= took < 0.2 + 0.05 + 1.0  # cut off within a tick (a quarter of the timeout) after the deadline
    assert not deadlines.pending and not deadlines.late


def test_a_read_cancelled_by_the_server_stopping_is_not_taken_for_a_late_body():
    async def go():
        task = asyncio.create_task(read_body(_Service(60), _receiver(then_wait=True), None, deadlines=BodyDeadlines()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_the_deadline_holds_with_and_without_the_shared_timer():
    async def late(deadlines):
        with pytest.raises(Refused) as got:
            await read_body(_Service(0.1), _receiver(then_wait=True), None, deadlines=deadlines)
        return got.value.sentence

    assert asyncio.run(late(BodyDeadlines())) == asyncio.run(late(None))


def test_a_log_line_reads_back_as_the_record_json_would_write(tmp_path):
    record = {"request_id": "r1", "input_sha256": "0" * 64, "input_chars": 12, "slices": {"file": "café €", "n": "3"},
              "stage": "100", "served_by": "student", "student_label": "billing", "student_confidence": 0.973421,
              "teacher_label": None, "teacher_asked": False, "reason": "confident", "latency_ms": 1e-07}
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    log = RequestLog(tmp_path)
    log.write(record, now=now)
    log.close()
    [line] = (tmp_path / next(p.name for p in tmp_path.iterdir())).read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == json.loads(json.dumps({"ts": now.isoformat(), **record}, ensure_ascii=False))
    assert "café €" in line  # UTF-8 as before, not escaped


def test_the_bucket_from_the_logged_hash_is_the_bucket_of_the_text():
    import hashlib

    for key in ("req-1", "please refund", "café", ""):
        assert router.bucket_of(hashlib.sha256(key.encode()).digest()) == router.bucket(key)


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_the_served_ngram_sums_label_scores_and_answers_as_its_torch_module(mode, tmp_path):
    torch.manual_seed(1)
    student = NgramStudent(labels=["billing", "technical", "account"], buckets=4096, dim=16, mode=mode)
    with torch.no_grad():
        student.module.bag.weight.normal_()
        student.module.out.weight.normal_()
        student.module.out.bias.normal_()
    student.save(tmp_path / "s")
    served = ArrayNgram.load(tmp_path / "s")  # as serving loads it: from its files, without torch
    assert (served.scores is None) is (mode == "max")  # a max does not commute with the linear layer
    texts = ["please refund the invoice today", "", "résumé café", "x " * 300]
    for text, row in zip(texts, student.predict_proba(texts), strict=True):
        assert np.allclose(served.predict_proba([text])[0], row, atol=1e-5)


def test_a_worker_freezes_what_it_loaded_out_of_the_collectors_sight():
    gc.unfreeze()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class _Transport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 1) if name == "peername" else None


def test_an_answer_leaves_in_one_write_and_nothing_is_lost_or_reordered():
    from core.serving.worker import OneWritePerAnswer

    async def go():
        raw = _Transport()
        t = OneWritePerAnswer(raw, asyncio.get_running_loop())
        t.write(b"HEAD1")
        t.write(b"BODY1")  # joined to the head it follows
        assert raw.writes == [b"HEAD1BODY1"]
        t.write(b"A")  # the same turn of the loop: straight through, after what went before
        await asyncio.sleep(0)
        t.write(b"HEAD2")  # held until the loop turns, then written alone
        assert raw.writes == [b"HEAD1BODY1", b"A"]
        await asyncio.sleep(0)
        assert raw.writes[-1] == b"HEAD2"
        t.write(b"HEAD3")
        t.close()  # a held write goes out before the connection closes
        assert raw.writes[-1] == b"HEAD3" and raw.closed and t.is_closing()
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)

    asyncio.run(go())


def test_a_remembered_header_is_refused_as_soon_as_the_refresh_drops_its_token(tmp_path):
    import hashlib

    from core.domain.rollout_state import RolloutState
    from core.serving.app import Service, check_token

    def digest(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    state = RolloutState(stage="100", threshold=0.5, must_escalate=[], teacher_sample_rate=0.0)
    svc = Service(project_id=1, state=state, student=None, teacher=None, teacher_labels=[], log=RequestLog(tmp_path),
                  token_hashes=frozenset({digest("kept"), digest("revoked")}))
    for _ in range(2):  # the second time from the remembered header
        check_token(svc, "Bearer revoked")
        check_token(svc, "Bearer kept")
    assert set(svc.accepted_headers) == {"Bearer revoked", "Bearer kept"}
    svc.token_hashes = frozenset({digest("kept")})  # what the refresh loop does after a revocation
    with pytest.raises(Refused) as refused:
        check_token(svc, "Bearer revoked")
    assert refused.value.status == 401 and "unknown or revoked" in refused.value.sentence
    check_token(svc, "Bearer kept")
    svc.token_hashes = frozenset({digest("kept")})  # an equal set read again: each header is hashed again
    check_token(svc, "Bearer kept")
    with pytest.raises(Refused):
        check_token(svc, "Bearer revoked")
    with pytest.raises(Refused):
        check_token(svc, "Bearer forged")
    assert "Bearer forged" not in svc.accepted_headers  # a refused header is never remembered


class _Cycle:
    """What uvicorn's request cycle shows: ``more_body`` False once the whole body is in."""

    def __init__(self, *messages: dict, more_body: bool, then_wait: bool = False):
        self.more_body = more_body
        self._receive = _receiver(*messages, then_wait=then_wait)

    async def receive(self) -> dict:
        return await self._receive()


class _CountingDeadlines(BodyDeadlines):
    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    def start(self, task, timeout_s: float) -> None:
        self.started += 1
        super().start(task, timeout_s)


def test_a_body_the_server_holds_whole_is_read_without_a_deadline_and_any_other_gets_one():
    async def go():
        deadlines = _CountingDeadlines()
        whole = await read_body(_Service(0.2), _Cycle({"type": "http.request", "body": b"abc"}, more_body=False)
                                .receive, None, deadlines=deadlines)
        held_whole = deadlines.started
        with pytest.raises(Refused) as late:  # still streaming: the deadline cuts it off
            await read_body(_Service(0.2), _Cycle({"type": "http.request", "body": b"{", "more_body": True},
                                                  more_body=True, then_wait=True).receive, None, deadlines=deadlines)
        return whole, held_whole, deadlines.started, late.value

    whole, held_whole, started, late = asyncio.run(go())
    assert whole == b"abc" and held_whole == 0 and started == 1 and late.status == 408
    assert not app_mod._arrived(_receiver())  # a receive that is not a request cycle's method: not arrived
