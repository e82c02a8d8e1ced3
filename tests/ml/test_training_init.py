"""Transformer students start from the teacher's layers (layer dropping) when they have its width, else from
their config, and say which."""

from __future__ import annotations

import pytest
import torch

from core.domain.errors import InvalidInput
from core.ml import build, init, students
from core.ml.config import TrainConfig

LABELS = ["billing", "tech", "account"]
TEXTS = ["my invoice was charged twice", "the app crashes on start", "I cannot log in to my account"] * 4


def save_teacher(path, *, layers: int, hidden: int, heads: int = 2):
    tokenizer = build.train_tokenizer(TEXTS, vocab_size=120, max_length=32)
    model = build.build_classifier(build.Size("t", layers, hidden, heads, hidden * 4), labels=LABELS,
                                   vocab_size=len(tokenizer), max_length=32)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_half_teacher_student_copies_embeddings_and_every_other_layer(tmp_path):
    teacher = save_teacher(tmp_path, layers=4, hidden=64)
    cfg = TrainConfig(family="transformer", size=init.HALF_TEACHER, max_length=32)
    student = students.new_student(cfg, labels=LABELS, texts=TEXTS, tokenizer_dir=tmp_path)
    s, t = student.module.bert, teacher.bert
    assert len(s.encoder.layer) == 2
    assert same(s.encoder.layer[0], t.encoder.layer[0]) and same(s.encoder.layer[1], t.encoder.layer[2])
    assert same(s.embeddings, t.embeddings) and same(student.module.classifier, teacher.classifier)
    assert students.init_plan(cfg, tmp_path).sentence == (
        "initialised from the teacher: embeddings and layers 1, 3 of 4")


def test_a_student_narrower_than_the_teacher_starts_from_its_config_and_says_why(tmp_path):
    teacher = save_teacher(tmp_path, layers=2, hidden=128)
    cfg = TrainConfig(family="transformer", size="tiny", max_length=32)
    student = students.new_student(cfg, labels=LABELS, texts=TEXTS, tokenizer_dir=tmp_path)
    assert not torch.equal(student.module.bert.embeddings.word_embeddings.weight[:, :64],
                           teacher.bert.embeddings.word_embeddings.weight[:, :64])
    plan = students.init_plan(cfg, tmp_path)
    assert not plan.from_teacher and "student is 64 wide and the teacher 128" in plan.sentence


def test_without_a_transformers_teacher_half_teacher_is_refused_and_tiny_starts_from_config():
    with pytest.raises(InvalidInput, match="needs a local transformers teacher"):
        students.new_student(TrainConfig(family="transformer", size=init.HALF_TEACHER), labels=LABELS,
                             texts=TEXTS)
    plan = students.init_plan(TrainConfig(family="transformer", size="tiny"), None)
    assert not plan.from_teacher and "not a local transformers model" in plan.sentence


def test_init_from_teacher_can_be_turned_off(tmp_path):
    save_teacher(tmp_path, layers=2, hidden=64)
    cfg = TrainConfig(family="transformer", size="tiny", max_length=32, init_from_teacher=False)
    assert students.init_plan(cfg, tmp_path).sentence == "initialised from the config, as asked"
