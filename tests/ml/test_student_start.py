"""A transformer student that starts from a pretrained encoder (the team's, checked and hashed) or is pre-trained
here by masked-language modelling (core.ml.init, core.ml.students.from_encoder, core.ml.pretrain)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from encoder_helpers import TEXTS, save_tiny_encoder

from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.ml import init, pretrain, students
from core.ml.build import SIZES
from core.ml.config import PRETRAINED, TrainConfig, student_sizes

LABELS = ["billing", "tech", "account"]


def test_a_student_is_the_encoder_with_its_own_tokenizer_and_a_new_head_for_the_projects_labels(tmp_path):
    from transformers import AutoModelForMaskedLM

    path = save_tiny_encoder(tmp_path / "enc")
    encoder = init.check_encoder(str(path))
    cfg = parse(TrainConfig, {"family": "transformer", "student_init": str(path), "max_length": 32})
    assert cfg.size == PRETRAINED and cfg.effective_lr < TrainConfig().effective_lr  # fine-tuned, not trained
    student = students.new_student(cfg, labels=LABELS, texts=["unused"], start_dir=encoder.path)
    saved = AutoModelForMaskedLM.from_pretrained(str(path)).bert
    assert all(torch.equal(a, b) for a, b in zip(student.module.bert.encoder.state_dict().values(),
                                                  saved.encoder.state_dict().values(), strict=True))
    assert student.labels == LABELS and student.module.classifier.out_features == 3
    assert student.tokenizer.get_vocab() == students.build.load_tokenizer(path).get_vocab()
    assert student.predict(TEXTS[:2])[0] in LABELS


def test_another_tasks_head_is_replaced_not_reused(tmp_path):
    path = save_tiny_encoder(tmp_path / "clf", labels=["x", "y", "z"])  # same count, other labels
    from transformers import AutoModelForSequenceClassification

    theirs = AutoModelForSequenceClassification.from_pretrained(str(path))
    student = students.from_encoder(path, labels=LABELS, max_length=32, seed=1)
    assert student.labels == LABELS
    assert not torch.equal(student.module.classifier.weight, theirs.classifier.weight)
    assert torch.equal(student.module.bert.embeddings.word_embeddings.weight,
                       theirs.bert.embeddings.word_embeddings.weight)


def test_a_distilbert_encoder_starts_a_student_too(tmp_path):
    path = save_tiny_encoder(tmp_path / "distil", model_type="distilbert")
    assert init.check_encoder(str(path)).model_type == "distilbert"
    student = students.from_encoder(path, labels=LABELS, max_length=32, seed=1)
    assert student.predict_proba(TEXTS[:3]).shape == (3, 3)


def test_the_hash_names_the_weight_config_and_tokenizer_files_wherever_they_lie(tmp_path):
    path = save_tiny_encoder(tmp_path / "enc")
    first = init.check_encoder(str(path))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(first.files)
    (path / "README.md").write_text("notes", encoding="utf-8")  # not part of the checkpoint
    copy = shutil.copytree(path, tmp_path / "elsewhere")
    assert init.check_encoder(str(copy)).sha256 == first.sha256
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.2}))
    assert init.check_encoder(str(copy)).sha256 != first.sha256


@pytest.mark.parametrize(("damage", "sentence"), [
    ("missing", "is not a directory: give a local encoder directory"),
    ("config", "has no config.json: it is not a transformers model directory"),
    ("tokenizer", "has no tokenizer"),
    ("weights", "has no weights"),
    ("decoder", "holds a gpt2, not an encoder"),
])
def test_a_directory_that_is_not_an_encoder_is_refused_with_the_fix(tmp_path, damage, sentence):
    path = save_tiny_encoder(tmp_path / "enc")
    if damage == "missing":
        path = tmp_path / "nowhere"
    elif damage == "config":
        (path / "config.json").unlink()
    elif damage == "tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (path / name).unlink()
    elif damage == "weights":
        (path / "model.safetensors").unlink()
    else:
        (path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InvalidInput, match=sentence) as caught:
        init.check_encoder(str(path))
    assert caught.value.field == "student_init"


def test_a_hub_id_is_not_fetched_offline_and_the_sentence_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidInput, match=r"offline \(HF_HUB_OFFLINE\), so it is not fetched as a hub id"):
        init.check_encoder("team/minilm")


@pytest.mark.parametrize(("settings", "sentence"), [
    ({"family": "ngram", "student_init": "/x"}, "Only a transformer student takes student_init"),
    ({"family": "ngram", "domain_pretrain": True}, "Only a transformer student takes domain_pretrain"),
    ({"size": PRETRAINED}, "give the encoder directory"),
    ({"size": "tiny", "student_init": "/x"}, "leave size 'tiny' out"),
])
def test_start_settings_that_do_not_fit_are_refused(settings, sentence):
    with pytest.raises(InvalidInput, match=sentence):
        parse(TrainConfig, settings)


def test_masking_never_chooses_padding_or_special_tokens_and_labels_only_the_chosen():
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 13, 14, 15, 16, 17, 3]])
    special = (ids <= 4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        inputs, labels = pretrain.mask_tokens(ids, special, mask_id=4, vocab_size=50, gen=gen)
        chosen = labels != -100
        assert chosen.any() and not (chosen & special).any()
        assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])


def test_pretraining_lowers_the_masked_token_loss_and_saves_an_encoder_a_student_starts_from(tmp_path):
    texts = TEXTS * 4
    cfg = TrainConfig(family="transformer", domain_pretrain=True, pretrain_steps=25, batch_size=8, max_length=32)
    tok = pretrain.tokenizer_for(cfg, encoder_dir=None, teacher_dir=None, texts=texts)
    model = pretrain.mlm_model(cfg, vocab_size=len(tok), encoder_dir=None, teacher_dir=None)
    report = pretrain.pretrain(model, tok, texts, out_dir=tmp_path / "start", cfg=cfg, max_seconds=None)
    assert report.steps == 25 and report.stop_reason == "max steps" and report.texts == len(texts)
    assert report.last_loss < report.first_loss
    assert pretrain.read_report(tmp_path / "start") == report
    assert init.check_encoder(str(tmp_path / "start")).model_type == "bert"
    student = students.new_student(cfg, labels=LABELS, texts=texts, start_dir=tmp_path / "start")
    assert torch.equal(student.module.bert.embeddings.word_embeddings.weight,
                       model.bert.embeddings.word_embeddings.weight)


def test_pretraining_stops_at_its_time_budget(tmp_path):
    cfg = TrainConfig(family="transformer", domain_pretrain=True, pretrain_steps=1000, batch_size=2, max_length=32)
    tok = pretrain.tokenizer_for(cfg, encoder_dir=None, teacher_dir=None, texts=TEXTS)
    model = pretrain.mlm_model(cfg, vocab_size=len(tok), encoder_dir=None, teacher_dir=None)
    report = pretrain.pretrain(model, tok, TEXTS, out_dir=tmp_path / "start", cfg=cfg, max_seconds=1e-6)
    assert report.steps == 1 and report.stop_reason == "time budget"


@pytest.mark.parametrize("family", ["transformer", "ngram"])
def test_the_sizes_offered_for_a_student_are_exactly_those_its_config_accepts(family: str):
    """The Train page offers student_sizes(family); every one is accepted, and a teacher's size is refused."""
    offered = student_sizes(family)
    for size in offered:
        extra = {"student_init": "/models/encoder"} if size == PRETRAINED else {}
        assert TrainConfig(family=family, size=size, **extra).size == size
    for teacher_size in (s for s in SIZES if s.startswith("teacher")):
        assert teacher_size not in offered
        with pytest.raises(ValueError, match="is not a"):
            TrainConfig(family=family, size=teacher_size)
