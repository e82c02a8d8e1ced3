"""The lean inference path (core.ml.lean): a transformer student answers through a checked ONNX Runtime export or
TorchScript trace with the eager model's answers; one whose export fails or differs answers eagerly and says so;
n-gram students stay as they are."""

from __future__ import annotations

import logging
import random
import sys

import numpy as np
import pytest
import torch

from core.domain.errors import InvalidInput
from core.ml import lean, students
from core.ml.config import TrainConfig

LABELS = ["billing", "tech", "account"]
TEXTS = ["my invoice was charged twice", "the app crashes on start", "I cannot log in to my account",
         "refund please", "error again after the update, it freezes every time I open the settings page"] * 3
WORDS = sorted({w for t in TEXTS for w in t.replace(",", "").split()}) + ["zxqv", "élan", "数据", "🙂", "!!", "42"]


def saved(tmp_path, family: str, size: str = "tiny"):
    cfg = TrainConfig(family=family, size=size, max_length=32)
    student = students.new_student(cfg, labels=LABELS, texts=TEXTS)
    student.save(tmp_path)
    return students.load(tmp_path)


def random_texts(n: int, seed: int) -> list[str]:
    """Known and unknown words, other scripts, from one word to far past max_length (truncated), and blank."""
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.choice([0, 1, 2, 5, 12, 40, 90]))) for _ in range(n)]


@pytest.mark.parametrize("size", ["tiny", "small"])
@pytest.mark.parametrize("runtime", lean.RUNTIMES)
def test_the_lean_student_gives_the_eager_models_answers_on_random_texts_at_every_batch_size(
        tmp_path, runtime, size):
    eager = saved(tmp_path, "transformer", size)
    fast = lean.load_for_inference(tmp_path, runtime=runtime)
    assert isinstance(fast, lean.LeanTransformerStudent) and fast.runtime == runtime and fast.labels == eager.labels
    texts = random_texts(120, seed=len(runtime) + len(size))
    want = eager.predict_proba(texts, batch_size=64)
    singly = np.concatenate([fast.predict_proba([t]) for t in texts])  # as a served request asks: numpy only
    for got in [fast.predict_proba(texts, batch_size=b) for b in (1, 7, 64)] + [singly]:
        assert np.abs(got - want).max() <= lean.ATOL
        assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert fast.predict(texts[:5]) == eager.predict(texts[:5])


def test_a_lean_export_whose_answers_differ_is_refused_and_the_student_answers_eagerly(tmp_path, monkeypatch, caplog):
    eager = saved(tmp_path, "transformer")
    real = lean.LeanTransformerStudent.logits
    monkeypatch.setattr(lean.LeanTransformerStudent, "logits", lambda self, batch: real(self, batch) + torch.tensor(
        [3.0, 0.0, -3.0]))
    with caplog.at_level(logging.WARNING, logger="core.ml.lean"):
        served = lean.load_for_inference(tmp_path)
    assert type(served) is students.TransformerStudent and served.runtime == "eager"
    assert "the onnx export failed" in served.lean_note and "differs from the model" in served.lean_note
    assert "served eagerly" in caplog.text and served.lean_note in caplog.text
    assert np.array_equal(served.predict_proba(TEXTS), eager.predict_proba(TEXTS))


def test_a_check_refuses_an_export_that_no_longer_matches_its_model(tmp_path):
    saved(tmp_path, "transformer")
    fast = lean.load_for_inference(tmp_path)
    assert fast.check(TEXTS) <= lean.ATOL
    head = fast.eager.module.classifier  # the eager model changes; the export keeps what it was made from
    head.weight = torch.nn.Parameter(head.weight.detach() + torch.randn_like(head.weight))
    with pytest.raises(InvalidInput, match="onnx export differs"):
        fast.check(TEXTS)


@pytest.mark.parametrize("breaks", ["exporter", "runtime missing"])
def test_a_student_whose_export_fails_answers_eagerly_and_says_why(tmp_path, monkeypatch, caplog, breaks):
    eager = saved(tmp_path, "transformer")
    if breaks == "exporter":
        monkeypatch.setattr(lean, "export_onnx", lambda student: (_ for _ in ()).throw(
            RuntimeError("Unsupported: ONNX export of operator foo")))
    else:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with caplog.at_level(logging.WARNING, logger="core.ml.lean"):
        served = lean.load_for_inference(tmp_path)
    assert served.runtime == "eager" and not isinstance(served, lean.LeanTransformerStudent)
    expected = "RuntimeError: Unsupported" if breaks == "exporter" else "ModuleNotFoundError"
    assert expected in served.lean_note and served.lean_note in caplog.text
    assert np.array_equal(served.predict_proba(TEXTS), eager.predict_proba(TEXTS))


def test_an_unknown_runtime_is_the_callers_error_not_a_fallback(tmp_path):
    saved(tmp_path, "transformer")
    with pytest.raises(InvalidInput, match="unknown lean runtime 'tensorrt': use one of onnx, torchscript"):
        lean.load_for_inference(tmp_path, runtime="tensorrt")


def test_ngram_students_are_served_as_they_are(tmp_path):
    saved(tmp_path, "ngram")
    served = lean.load_for_inference(tmp_path)
    assert isinstance(served, students.NgramStudent) and served.runtime == "eager" and served.lean_note == ""


def test_eager_on_request_is_the_plain_student(tmp_path):
    saved(tmp_path, "transformer")
    served = lean.load_for_inference(tmp_path, lean=False)
    assert type(served) is students.TransformerStudent and served.lean_note == ""
