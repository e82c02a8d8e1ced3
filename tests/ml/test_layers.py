"""Intermediate-layer distillation (core.ml.layers): TinyBERT's hidden-state and attention losses beside the
soft-label loss, on tiny BERTs saved here (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.ml import build, layers, loop, students
from core.ml.config import TrainConfig
from core.ml.data import KDData

LABELS = ["billing", "tech", "account"]
TEXTS = ["my invoice was charged twice", "the app crashes on start", "I cannot log in to my account",
         "refund the double charge please", "the screen goes blank after the update", "reset my password"] * 2
LONG = " ".join(["the app crashes on start and my invoice was charged twice"] * 6)  # past 32 positions


def save_teacher(path, *, layers_: int = 2, hidden: int = 32, heads: int = 2):
    tokenizer = build.fixed_tokenizer(TEXTS, vocab_size=200, max_length=32)
    torch.manual_seed(0)
    model = build.build_classifier(build.Size("t", layers_, hidden, heads, hidden * 2), labels=LABELS,
                                   vocab_size=len(tokenizer), max_length=32)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model.eval(), tokenizer


def student_of(tokenizer, *, layers_: int, hidden: int, heads: int = 2, seed: int = 1, max_length: int = 32):
    torch.manual_seed(seed)
    model = build.build_classifier(build.Size("s", layers_, hidden, heads, hidden * 2), labels=LABELS,
                                   vocab_size=len(tokenizer), max_length=max_length)
    return students.TransformerStudent(model=model, tokenizer=tokenizer, max_length=max_length)


def cfg(**kw) -> TrainConfig:
    base = {"family": "transformer", "size": "tiny", "max_length": 32, "epochs": 1, "batch_size": 4, "seed": 3,
            "val_fraction": 0.25, "points_per_epoch": 0}
    return TrainConfig(**{**base, **kw})


def kd_data() -> KDData:
    probs = np.random.default_rng(0).dirichlet(np.ones(len(LABELS)), size=len(TEXTS)).astype(np.float32)
    return KDData(texts=TEXTS, probs=probs, reference=np.arange(len(TEXTS)) % len(LABELS), labels=LABELS)


def batch_of(student, texts=TEXTS[:4]):
    return student.collate(student.encode(list(texts)))


def test_the_uniform_map_takes_every_kth_teacher_layer_ending_with_the_last():
    assert layers.uniform_map(1, 4) == [(0, 3)]
    assert layers.uniform_map(2, 4) == [(0, 1), (1, 3)]
    assert layers.uniform_map(2, 5) == [(0, 1), (1, 3)]  # k = 5 // 2 = 2
    assert layers.uniform_map(3, 3) == [(0, 0), (1, 1), (2, 2)]
    # Hidden states are numbered as transformers returns them: 0 the embeddings, i + 1 the output of layer i.
    assert layers.hidden_map(layers.uniform_map(2, 4)) == [(0, 0), (1, 2), (2, 4)]
    with pytest.raises(ValueError, match="1 to 2 student layers"):
        layers.uniform_map(3, 2)


def test_the_plan_names_the_map_in_people_s_numbering(tmp_path):
    _, tok = save_teacher(tmp_path, layers_=4, hidden=32, heads=2)
    plan = layers.plan(cfg(hidden_weight=1.0, attention_weight=2.0), student_of(tok, layers_=2, hidden=16, heads=1),
                       tmp_path, TEXTS)
    assert plan.hidden_map == [(0, 0), (1, 2), (2, 4)] and plan.attention_map == [(0, 1), (1, 3)]
    assert plan.sentence == (
        "soft labels (T 2, α 0.5) + hidden states (weight 1; embeddings → embeddings, student layer 1 ← teacher "
        "layer 2, student layer 2 ← teacher layer 4, projected 16 → 32 wide) + attention (weight 2; student layer 1 "
        "← teacher layer 2, student layer 2 ← teacher layer 4, heads averaged (1 vs 2))")
    deeper = layers.plan(cfg(hidden_weight=1.0), student_of(tok, layers_=5, hidden=32), tmp_path, TEXTS)
    assert not deeper.layered and "more layers (5) than the teacher (4)" in deeper.sentence


def test_the_layer_losses_are_zero_for_a_copy_of_the_teacher_and_not_for_another_model(tmp_path):
    teacher, tok = save_teacher(tmp_path, layers_=2, hidden=32)
    copy = student_of(tok, layers_=2, hidden=32)
    copy.module.load_state_dict(teacher.state_dict())
    plan = layers.plan(cfg(hidden_weight=1.0, attention_weight=1.0), copy, tmp_path, TEXTS)
    assert plan.projection is None and plan.attention_map == [(0, 0), (1, 1)]
    distill = layers.distiller(plan, tmp_path, copy.module, torch.device("cpu"))
    batch = batch_of(copy, [TEXTS[0], LONG])  # padding and a row longer than the teacher reads
    copy.module.eval()  # no dropout, so the copy computes exactly what the teacher does
    assert distill.loss(distill.forward_student(copy.module, batch), batch).item() == pytest.approx(0.0, abs=1e-10)
    other = student_of(tok, layers_=2, hidden=32, seed=9)
    other.module.eval()
    layers.eager_attention(other.module)
    out = distill.forward_student(other.module, batch)
    assert distill.loss(out, batch).item() > 1e-3


def test_a_projection_is_learned_only_when_the_widths_differ(tmp_path):
    _, tok = save_teacher(tmp_path, layers_=2, hidden=32)
    same = layers.plan(cfg(hidden_weight=1.0), student_of(tok, layers_=1, hidden=32), tmp_path, TEXTS)
    assert same.projection is None
    assert layers.distiller(same, tmp_path, student_of(tok, layers_=1, hidden=32).module, "cpu").trainable() == []
    narrow = student_of(tok, layers_=1, hidden=16)
    plan = layers.plan(cfg(hidden_weight=1.0), narrow, tmp_path, TEXTS)
    assert plan.projection == (16, 32)
    distill = layers.distiller(plan, tmp_path, narrow.module, "cpu")
    assert [p.shape for p in distill.trainable()] == [torch.Size([32, 16]), torch.Size([32])]
    batch = batch_of(narrow)
    distill.loss(distill.forward_student(narrow.module, batch), batch).backward()
    assert distill.projection.weight.grad.abs().sum() > 0  # the projection is on the loss's path: it trains
    assert all(p.grad is None for p in distill.teacher.parameters())  # the teacher never does


def test_attention_heads_are_averaged_when_the_head_counts_differ():
    mask = torch.tensor([[1, 1, 1, 0]])
    a = torch.softmax(torch.randn(1, 2, 4, 4), dim=-1)
    mean = a.mean(dim=1, keepdim=True)
    # One student head equal to the teacher's head average: nothing to learn; two heads compared head by head.
    assert layers.attention_loss([mean], [a], [(0, 0)], mask).item() == pytest.approx(0.0, abs=1e-12)
    assert layers.attention_loss([a.flip(1)], [a], [(0, 0)], mask).item() > 0
    # Padding is left out: rows and columns past the mask do not count.
    noisy = a.clone()
    noisy[..., 3, :] = 0.7
    noisy[..., :, 3] = 0.3
    assert layers.attention_loss([noisy], [a], [(0, 0)], mask).item() == pytest.approx(0.0, abs=1e-12)


def test_a_student_with_another_tokenizer_gets_soft_labels_alone_and_says_why(tmp_path):
    save_teacher(tmp_path, layers_=2, hidden=32)
    own = build.fixed_tokenizer(["entirely different words here"] + TEXTS[::-1], vocab_size=90, max_length=32)
    student = student_of(own, layers_=1, hidden=16)
    result = loop.fit(kd_data(), cfg(hidden_weight=1.0, attention_weight=1.0), out_dir=tmp_path / "run",
                      new_student=lambda: student, teacher_dir=tmp_path)
    assert not result.losses.layered and result.losses.hidden_map == []
    assert result.losses.sentence == (
        "soft labels (T 2, α 0.5) alone: the student does not use the teacher's tokenizer, so its token positions "
        "do not line up with the teacher's")


def test_soft_labels_alone_when_there_is_no_local_transformers_teacher_or_the_student_is_an_ngram(tmp_path):
    _, tok = save_teacher(tmp_path / "t", layers_=2, hidden=32)
    weights = cfg(hidden_weight=1.0)
    assert "not a local transformers model" in layers.plan(weights, student_of(tok, layers_=1, hidden=16), None,
                                                            TEXTS).sentence
    ngram = cfg(family="ngram", hidden_weight=1.0)
    assert layers.plan(ngram, object(), tmp_path / "t", TEXTS).sentence.endswith(
        "alone: an n-gram student has no layers to match the teacher's")
    assert layers.plan(cfg(), object(), tmp_path / "t", TEXTS).sentence == (
        "soft labels (T 2, α 0.5) alone (hidden-state and attention weights are 0)")


def test_weights_above_zero_change_the_gradient_and_the_trained_student(tmp_path):
    _, tok = save_teacher(tmp_path, layers_=2, hidden=32)
    data = kd_data()

    def grads(**weights) -> torch.Tensor:
        student = student_of(tok, layers_=1, hidden=32)
        c = cfg(**weights)
        plan = layers.plan(c, student, tmp_path, TEXTS)
        distill = layers.distiller(plan, tmp_path, student.module, "cpu") if plan.layered else None
        student.module.eval()
        idx = np.arange(4)
        loop.batch_loss(student, batch_of(student), torch.from_numpy(data.probs[idx]),
                        torch.from_numpy(data.reference[idx]), c, distill).backward()
        return student.module.bert.encoder.layer[0].attention.self.query.weight.grad.clone()

    soft = grads()
    assert soft.abs().sum() > 0
    assert not torch.allclose(grads(hidden_weight=1.0), soft)
    assert not torch.allclose(grads(attention_weight=5.0), soft)

    def trained(**weights) -> tuple[torch.Tensor, loop.FitResult]:
        result = loop.fit(data, cfg(**weights), out_dir=tmp_path / f"run-{sorted(weights.items())}",
                          new_student=lambda: student_of(tok, layers_=1, hidden=16), teacher_dir=tmp_path)
        return students.load(result.best_dir).module.bert.encoder.layer[0].output.dense.weight, result

    alone, soft_run = trained()
    both, layered_run = trained(hidden_weight=1.0, attention_weight=1.0)
    assert not soft_run.losses.layered and layered_run.losses.layered
    assert not torch.allclose(alone, both)
    # The projection is saved beside the optimizer, so a resumed run carries on with it.
    saved = torch.load(layered_run.best_dir / loop.OPTIMIZER_FILE, weights_only=True)
    assert saved["layer_projection"]["weight"].shape == (32, 16)


@pytest.mark.parametrize(("field", "label"), [("hidden_weight", "Hidden-state weight"),
                                              ("attention_weight", "Attention weight")])
def test_negative_weights_are_refused_with_a_sentence_naming_the_field(field, label):
    with pytest.raises(InvalidInput) as refused:
        parse(TrainConfig, {"family": "transformer", field: -0.5})
    assert str(refused.value) == f"{label} must be at least 0 (you gave -0.5)."
    assert refused.value.field == field
    assert getattr(parse(TrainConfig, {field: 0.5}), field) == 0.5


def test_a_resumed_run_takes_the_projection_back_from_its_checkpoint(tmp_path, monkeypatch):
    _, tok = save_teacher(tmp_path, layers_=2, hidden=32)
    made = []
    real = layers.distiller
    monkeypatch.setattr(layers, "distiller", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    c = cfg(hidden_weight=1.0)
    first = loop.fit(kd_data(), c, out_dir=tmp_path / "run", new_student=lambda: student_of(tok, layers_=1, hidden=16),
                     teacher_dir=tmp_path)
    trained = made[0].projection.weight.detach().clone()
    # The same call again finds the finished checkpoint: nothing left to train, the projection is the saved one.
    again = loop.fit(kd_data(), c, out_dir=tmp_path / "run", new_student=lambda: pytest.fail("not resumed"),
                     teacher_dir=tmp_path)
    assert again.resumed_from == first.epochs_done == 1 and again.losses == first.losses
    assert torch.equal(made[1].projection.weight, trained)


def test_the_teacher_s_states_are_kept_per_row_and_reused_with_the_same_loss(tmp_path):
    _, tok = save_teacher(tmp_path, layers_=2, hidden=32)
    student = student_of(tok, layers_=1, hidden=16, heads=1)
    plan = layers.plan(cfg(hidden_weight=1.0, attention_weight=3.0), student, tmp_path, TEXTS)
    distill = layers.distiller(plan, tmp_path, student.module, "cpu")
    passes = []
    distill.teacher.register_forward_hook(lambda *_: passes.append(1))
    student.module.eval()

    def loss(rows: list[int], *, cached: bool) -> float:
        batch = batch_of(student, [TEXTS[r] for r in rows])
        out = distill.forward_student(student.module, batch)
        return distill.loss(out, batch, rows if cached else None).item()

    rows = [0, 1, 4, 5]
    fresh = loss(rows, cached=False)
    assert loss(rows, cached=True) == pytest.approx(fresh, rel=1e-6) and len(passes) == 2
    # Later epochs: other batches of the same rows (other padding widths) come from the cache, same loss.
    assert loss(rows, cached=True) == pytest.approx(fresh, rel=1e-6)
    short = [5, 0]
    assert loss(short, cached=True) == pytest.approx(loss(short, cached=False), rel=1e-6)
    assert len(passes) == 3  # only the uncached call ran the teacher again
