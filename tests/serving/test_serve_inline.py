"""Issue 18: the n-gram student answered inline from per-word label-score sums (core.serving.inline), attacked
against the student's own predict_proba: the same probabilities and label on awkward texts, every mode it takes,
the modes and featurisers it must not take, bounded caches, and the service answering and logging with it."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import numpy as np
import pytest
import torch

from core.domain.rollout_state import RolloutState
from core.ml.ngram_array import ArrayNgram
from core.ml.students import NgramStudent
from core.serving import inline as inline_mod
from core.serving.app import Service, build_app
from core.serving.inline import InlineNgram
from core.serving.requestlog import RequestLog

LABELS = ["billing", "technical", "account", "spam"]
WORDS = ["refund", "invoice", "crash", "login", "the", "my", "é", "Straße", "STRASSE", "12", "x", "naïve", "日本語",
         "İstanbul", "ǅemal", "don't", "e-mail", "___", "٣٤", "ﬁle"]


def _served(tmp_path, *, mode: str = "mean", seed: int = 1) -> ArrayNgram:
    torch.manual_seed(seed)
    student = NgramStudent(labels=LABELS, buckets=4096, dim=16, mode=mode)
    with torch.no_grad():
        student.module.bag.weight.normal_()
        student.module.out.weight.normal_()
        student.module.out.bias.normal_()
    student.save(tmp_path / f"s-{mode}-{seed}")
    return ArrayNgram.load(tmp_path / f"s-{mode}-{seed}")  # as serving loads it


def _texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "!!!", "a", "a a a a", "x " * 300, "please refund the invoice today"]
    texts += [" ".join(rng.choice(WORDS) + rng.choice(["", "", ",", "?", str(rng.randint(0, 10**6))])
                       for _ in range(rng.randint(1, 14))) for _ in range(n)]
    return texts


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_the_inline_answer_is_the_students_own(mode, tmp_path):
    served = _served(tmp_path, mode=mode)
    inline = InlineNgram.of(served)
    assert inline is not None
    texts = _texts(400)
    # A sum of a few hundred rows reaches logits near 100, where float32 (the student's) rounds at 1e-5.
    tolerance = 1e-6 if mode == "mean" else inline_mod.TOLERANCE
    for text, row in zip(texts, served.predict_proba(texts), strict=True):
        assert np.allclose(inline.probabilities(text), row, atol=tolerance, rtol=0), text
        k, confidence = inline.answer(text)
        assert k == int(row.argmax()) and confidence == pytest.approx(float(row[k]), abs=tolerance), text
    for text in texts[:50]:  # the second time from the kept sums: the same answer
        assert inline.answer(text) == inline.answer(text)


def test_a_max_pooled_student_keeps_its_own_predict_proba(tmp_path):
    assert InlineNgram.of(_served(tmp_path, mode="max")) is None  # a max does not split into word sums


def test_a_student_of_another_model_or_featuriser_keeps_its_own_predict_proba(tmp_path, monkeypatch):
    class Other:
        labels = LABELS

    assert InlineNgram.of(Other()) is None
    served = _served(tmp_path)
    monkeypatch.setattr(inline_mod, "FEATURIZER_VERSION", inline_mod.KNOWN_FEATURIZER + 1)
    assert InlineNgram.of(served) is None


def test_a_word_pair_id_unlike_the_featurisers_is_caught_when_built(tmp_path, monkeypatch):
    """Both share core.ml.ngram_array.pair_bucket; should the scorer's ids ever differ, the probe check at load
    hands the student back to its own predict_proba."""
    served = _served(tmp_path)
    monkeypatch.setattr(inline_mod, "pair_bucket", lambda prev, word, buckets: (prev ^ word) % buckets)
    assert InlineNgram.of(served) is None


def test_the_kept_sums_stay_bounded_and_right_past_their_limit(tmp_path):
    served = _served(tmp_path)
    inline = InlineNgram(served, cache_size=50)
    texts = [f"refund invoice {i} crash {i * 7}" for i in range(300)]
    for text, row in zip(texts, served.predict_proba(texts), strict=True):
        assert np.allclose(inline.probabilities(text), row, atol=1e-6, rtol=0)
        assert len(inline._words) <= 50 and len(inline._pairs) <= 50
    assert len(inline.featurizer._cache) <= 1  # the featuriser's own cache would be a second copy of every word


def test_the_service_answers_and_logs_the_inline_label_and_confidence(tmp_path):
    served = _served(tmp_path)
    st = RolloutState(stage="100", threshold=0.0, must_escalate=[], teacher_sample_rate=0.0)
    svc = Service(project_id=1, state=st, student=served, teacher=None, teacher_labels=LABELS,
                  log=RequestLog(tmp_path / "serving"), inline=InlineNgram.of(served))
    texts = _texts(30, seed=3)[7:]

    async def go():
        transport = httpx.ASGITransport(app=build_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.post("/v1/classify", json={"text": t, "id": f"r{i}"}) for i, t in enumerate(texts)]

    answers = [r.json() for r in asyncio.run(go())]
    lines = {x["request_id"]: x for f in (tmp_path / "serving").glob("requests-*.jsonl")
             for x in map(json.loads, f.read_text().splitlines())}
    for i, (row, got) in enumerate(zip(served.predict_proba(texts), answers, strict=True)):
        k = int(row.argmax())
        assert got["label"] == LABELS[k] and got["confidence"] == pytest.approx(float(row[k]), abs=1e-6)
        assert lines[f"r{i}"]["student_label"] == LABELS[k]
        assert lines[f"r{i}"]["student_confidence"] == pytest.approx(float(row[k]), abs=2e-6)
