"""The lean inference path: a transformer student answers through a checked TorchScript trace, with the same
answers as the eager model; n-gram students stay as they are."""

from __future__ import annotations

import numpy as np
import pytest

from core.domain.errors import InvalidInput
from core.ml import students
from core.ml.config import TrainConfig

LABELS = ["billing", "tech", "account"]
TEXTS = ["my invoice was charged twice", "the app crashes on start", "I cannot log in to my account",
         "refund please", "error again after the update, it freezes every time I open the settings page"] * 3


def saved(tmp_path, family: str):
    cfg = TrainConfig(family=family, size="tiny", max_length=32)
    student = students.new_student(cfg, labels=LABELS, texts=TEXTS)
    student.save(tmp_path)
    return students.load(tmp_path)


def test_the_traced_transformer_gives_the_eager_models_answers_at_every_length_and_batch_size(tmp_path):
    eager = saved(tmp_path, "transformer")
    lean = students.load_for_inference(tmp_path)
    assert isinstance(lean, students.LeanTransformerStudent) and lean.labels == eager.labels
    for batch_size in (1, 4, 64):
        a = eager.predict_proba(TEXTS, batch_size=batch_size)
        b = lean.predict_proba(TEXTS, batch_size=batch_size)
        assert np.allclose(a, b, atol=1e-5)
        assert (a.argmax(axis=1) == b.argmax(axis=1)).all()
    assert lean.check(TEXTS) <= 1e-4


def test_a_trace_that_differs_from_the_model_is_refused(tmp_path):
    saved(tmp_path, "transformer")
    lean = students.load_for_inference(tmp_path)
    import torch

    head = lean.eager.module.classifier  # the eager model changes; the frozen trace keeps what it was traced with
    head.weight = torch.nn.Parameter(head.weight.detach() + 1.0 * torch.randn_like(head.weight))
    with pytest.raises(InvalidInput, match="TorchScript trace differs"):
        lean.check(TEXTS)


def test_ngram_students_are_served_as_they_are(tmp_path):
    saved(tmp_path, "ngram")
    assert isinstance(students.load_for_inference(tmp_path), students.NgramStudent)

