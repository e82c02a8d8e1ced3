"""The local teacher adapter: a saved classifier run in length-sorted batches, answers in input order."""

from __future__ import annotations

import numpy as np
import pytest
from teacher_helpers import LABELS, save_tiny_classifier, ticket_rows

from core.domain.errors import InvalidInput
from core.teacher.local import LocalAdapter, model_labels


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


def reference_probs(model_dir, texts):
    """One text at a time, no padding: what the batched path must reproduce."""
    import torch

    from core.ml.build import load_classifier, load_tokenizer

    model, tok = load_classifier(model_dir).eval(), load_tokenizer(model_dir)
    with torch.no_grad():
        rows = [tok(t, truncation=True, max_length=64, return_tensors="pt") for t in texts]
        return np.stack([torch.softmax(model(**r).logits, -1)[0].numpy() for r in rows])


def test_labels_come_from_the_model_config(model_dir):
    assert model_labels(model_dir) == LABELS
    assert LocalAdapter(model_dir).labels == LABELS


def test_batched_sorted_predictions_match_one_at_a_time_in_input_order(model_dir):
    texts = ticket_rows(23)["text"].tolist()
    texts[5] = "short"
    texts[9] = "a much longer ticket text " * 8
    adapter = LocalAdapter(model_dir, batch_size=4)
    out = adapter.predict(texts, labels=LABELS)
    expected = reference_probs(model_dir, texts)
    got = np.array([p.probs for p in out])
    assert got.shape == (23, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p.label for p in out] == [LABELS[k] for k in expected.argmax(1)]
    assert all(abs(p.confidence - max(p.probs)) < 1e-9 for p in out)


def test_progress_is_reported_per_batch_up_to_one(model_dir):
    seen = []
    LocalAdapter(model_dir, batch_size=8).predict(ticket_rows(20)["text"].tolist(), labels=LABELS,
                                                  progress=lambda f, m: seen.append(f))
    assert len(seen) == 3 and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_folder_without_a_model_is_refused_with_the_fix(tmp_path):
    with pytest.raises(InvalidInput, match="no config.json.*save_pretrained"):
        LocalAdapter(tmp_path)


def test_other_labels_than_the_models_are_refused(model_dir):
    with pytest.raises(InvalidInput, match="run it with its own labels"):
        LocalAdapter(model_dir).predict(["x"], labels=["a", "b"])
