"""The KD loss against a hand computation, soft targets, the hashing featuriser and run settings."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.ml.config import TrainConfig
from core.ml.kd import kd_loss, soft_targets
from core.ml.loop import split_validation
from core.ml.ngram import HashingFeaturizer


def test_kd_loss_matches_a_hand_computation():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[0.8, 0.2], [0.5, 0.5]])
    reference = torch.tensor([0, -1])  # the second row has no reference
    T, alpha = 2.0, 0.25

    # Row 1: targets softmax(log p / T) = (√.8, √.2) / (√.8 + √.2) = (2/3, 1/3);
    # student at T: softmax(0.5, 0); KL(t‖s); cross-entropy −log softmax(1, 0)[0].
    s1 = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    kl1 = 2 / 3 * math.log((2 / 3) / s1[0]) + 1 / 3 * math.log((1 / 3) / s1[1])
    ce1 = math.log(1 + math.exp(-1))
    # Row 2: targets (1/2, 1/2); student at T: softmax(0, 1); no reference, so no cross-entropy.
    s2 = [1 / (1 + math.e), math.e / (1 + math.e)]
    kl2 = 0.5 * math.log(0.5 / s2[0]) + 0.5 * math.log(0.5 / s2[1])
    expected = ((alpha * T**2 * kl1 + (1 - alpha) * ce1) + alpha * T**2 * kl2) / 2

    got = kd_loss(logits, teacher, reference, temperature=T, alpha=alpha).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.179645, abs=1e-5)


def test_a_row_without_reference_contributes_only_the_kd_term():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    teacher = torch.tensor([[0.1, 0.7, 0.2]])
    unlabelled = kd_loss(logits, teacher, torch.tensor([-1]), temperature=3.0, alpha=0.4).item()
    kd_only = kd_loss(logits, teacher, torch.tensor([1]), temperature=3.0, alpha=1.0).item()
    assert unlabelled == pytest.approx(0.4 * kd_only)
    # With a reference the cross-entropy is added on top.
    labelled = kd_loss(logits, teacher, torch.tensor([1]), temperature=3.0, alpha=0.4).item()
    assert labelled > unlabelled


def test_soft_targets_soften_with_temperature_and_keep_one_hot_rows_one_hot():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    assert torch.allclose(soft_targets(p, 1.0), p)
    soft = soft_targets(p, 4.0)
    assert soft[0, 0] < 0.7 and soft[0, 2] > 0.1 and soft[0].sum().item() == pytest.approx(1.0)
    assert soft[1].tolist() == [0.0, 1.0, 0.0]
    # Equals softmax(log p / T) wherever p > 0.
    assert torch.allclose(soft[0], torch.softmax(torch.log(p[0]) / 4.0, dim=-1))


def test_hashing_featurizer_is_stable_across_processes_and_sensitive_to_words():
    f = HashingFeaturizer(2**16)
    text = "My invoice was charged twice"
    ids = f.features(text)
    assert ids == HashingFeaturizer(2**16).features(text) == f.features(text)  # cached or not
    assert all(0 <= i < 2**16 for i in ids)
    # 5 words: 5 unigrams, 4 bigrams and the character 3- and 4-grams of each word.
    assert len(ids) == 5 + 4 + sum(len(w) + 2 - 2 + len(w) + 2 - 3 for w in text.lower().split())
    assert f.features("my invoice was charged once") != ids
    # A fresh interpreter (another hash seed) gives the same ids: saved models stay valid.
    code = ("from core.ml.ngram import HashingFeaturizer as H;"
            f"print(H(2**16).features({text!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"}, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == str(ids)


def test_validation_split_is_fixed_by_its_seed_and_disjoint():
    train, val = split_validation(100, fraction=0.1, seed=7)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    again_train, again_val = split_validation(100, fraction=0.1, seed=7)
    assert list(val) == list(again_val)
    assert list(split_validation(100, fraction=0.1, seed=8)[1]) != list(val)


@pytest.mark.parametrize("settings, field", [
    ({"family": "ngram", "size": "huge"}, "size"),
    ({"alpha": 1.5}, "alpha"),
    ({"temperature": 0}, "temperature"),
    ({"family": "transformer", "size_overrides": {"buckets": 10}}, "buckets"),
    ({"family": "cnn"}, "family"),
])
def test_bad_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(InvalidInput) as err:
        parse(TrainConfig, settings)
    assert field in (err.value.field or "") or field in str(err.value)
