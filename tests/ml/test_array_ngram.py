"""The n-gram student's numpy forward pass (what ``stillroom serve`` answers with) gives the torch module's
probabilities, for every bag mode, empty texts and batches alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.ml.ngram import ArrayNgram
from core.ml.students import NgramStudent

TEXTS = ["please refund the invoice today", "", "!!!", "the app crash again since monday, login fails",
         "résumé café naïve", "x " * 300]


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_the_numpy_forward_pass_matches_the_torch_module(mode):
    torch.manual_seed(0)
    student = NgramStudent(labels=["billing", "technical", "account"], buckets=4096, dim=16, mode=mode)
    with torch.no_grad():  # weights far from the initialisation, so differences would show
        student.module.bag.weight.normal_()
        student.module.out.weight.normal_()
        student.module.out.bias.normal_()
    lean = ArrayNgram.of(student)
    expected = student.predict_proba(TEXTS)
    assert np.allclose(lean.predict_proba(TEXTS), expected, atol=1e-5)
    assert all(np.allclose(lean.predict_proba([t])[0], row, atol=1e-5) for t, row in zip(TEXTS, expected,
                                                                                          strict=True))
    assert lean.labels == student.labels and lean.predict_proba([]).shape == (0, 3)


def test_the_numpy_copy_does_not_follow_later_training():
    student = NgramStudent(labels=["a", "b"], buckets=512, dim=8)
    lean = ArrayNgram.of(student)
    before = lean.predict_proba(["some text"])
    with torch.no_grad():
        student.module.out.bias.add_(5.0)
    assert np.array_equal(lean.predict_proba(["some text"]), before)
