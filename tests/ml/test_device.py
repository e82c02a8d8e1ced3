"""Where torch runs (core.ml.device.pick): a GPU when one is present, else the CPU; an explicit device the machine
lacks is refused in a sentence; training and the local teacher run on the device they are given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from teacher_helpers import LABELS, WORDS, save_tiny_classifier

from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.ml import device, loop, students
from core.ml.config import TrainConfig
from core.teacher.local import LocalAdapter


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv(device.ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(device, "_mps_available", lambda: False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: auto rightly picks it")
def test_auto_picks_the_cpu_on_this_machine(monkeypatch):
    monkeypatch.delenv(device.ENV, raising=False)
    expected = "mps" if device._mps_available() else "cpu"
    assert device.pick().type == expected and device.pick("auto").type == expected


def test_auto_prefers_a_gpu_and_the_environment_or_the_run_can_say_otherwise(no_gpu, monkeypatch):
    assert device.pick(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.pick("auto") == torch.device("cuda")
    monkeypatch.setenv(device.ENV, "cpu")  # the host's override of "auto"
    assert device.pick("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device.pick("cuda") == torch.device("cuda")  # a run's explicit device wins over the host's


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_an_explicit_device_the_machine_lacks_is_refused_in_a_sentence(no_gpu, name):
    with pytest.raises(InvalidInput, match=rf"device '{name}': this machine has no .*; use \"auto\" or \"cpu\""):
        device.pick(name)


def test_a_device_that_is_no_device_is_refused_naming_the_field_and_the_fix(no_gpu, monkeypatch, tmp_path):
    with pytest.raises(InvalidInput, match=r"Device.*'gpu' is not a device: give \"auto\""):
        parse(TrainConfig, {"device": "gpu"})
    with pytest.raises(InvalidInput, match="device 'gpu' is not a device"):
        LocalAdapter(tmp_path, device="gpu")  # refused before the folder is read
    monkeypatch.setenv(device.ENV, "tpu")
    with pytest.raises(InvalidInput, match="STILLROOM_DEVICE 'tpu' is not a device"):
        device.pick()
    assert TrainConfig().device == "auto" and TrainConfig(device=" CPU ").device == "cpu"


def test_training_on_the_cpu_given_explicitly_learns_the_teacher(tmp_path):
    rng = np.random.default_rng(0)
    texts = [f"{WORDS[LABELS[i % 3]]} {' '.join(rng.choice(['a', 'b', 'c', 'd'], 3))} {i}" for i in range(150)]
    probs = np.eye(3, dtype=np.float32)[[i % 3 for i in range(150)]] * 0.8 + 0.2 / 3
    data = loop.KDData(texts=texts, probs=probs, labels=LABELS, reference=np.full(150, -1))
    cfg = TrainConfig(family="ngram", size="tiny", epochs=6, patience=3, batch_size=16, device="cpu")
    result = loop.fit(data, cfg, out_dir=tmp_path,
                      new_student=lambda: students.new_student(cfg, labels=LABELS, texts=texts))
    assert max(h.val_agreement for h in result.history) >= 0.9
    assert students.load(result.best_dir).predict([WORDS["account"]]) == ["account"]


def test_the_local_teacher_runs_on_the_device_it_is_given(tmp_path, no_gpu):
    model_dir = save_tiny_classifier(tmp_path / "teacher")
    texts = list(WORDS.values())
    on_cpu = LocalAdapter(model_dir, device="cpu").predict_proba(texts)
    np.testing.assert_allclose(LocalAdapter(model_dir).predict_proba(texts), on_cpu, atol=1e-6)  # auto: the CPU
    with pytest.raises(InvalidInput, match="no such CUDA GPU"):
        LocalAdapter(model_dir, device="cuda").predict(texts, labels=LABELS)


def test_the_search_and_the_cli_take_the_device_as_a_training_setting():
    from click.testing import CliRunner

    from core.cli import cli
    from core.training import search

    with pytest.raises(InvalidInput, match="'gpu' is not a device"):
        search.candidates(base={"device": "gpu"})
    assert {c["device"] for c in search.candidates(base={"device": "cpu"})} == {"cpu"}
    assert "--device" in CliRunner().invoke(cli, ["train", "start", "--help"]).output
