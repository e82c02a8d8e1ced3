"""Distilling tiny students (both families) on a tiny keyword set: agreement, unlabelled rows, resume."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.ml import loop, students
from core.ml.config import TrainConfig

LABELS = ["billing", "tech", "account"]
KEYWORDS = {
    "billing": ["invoice", "refund", "charge", "payment", "billed"],
    "tech": ["crash", "error", "bug", "freezes", "timeout"],
    "account": ["password", "login", "email", "profile", "username"],
}
FILLER = ("please help me with my the this today again since yesterday urgent issue hello thanks "
          "customer order app phone it not working team support question need").split()
# The agreement with the teacher a tiny student must reach on the validation rows.
AGREEMENT_FLOOR = 0.9


def keyword_set(n: int = 300, *, seed: int = 0, labelled: float = 0.5) -> tuple[list[str], np.ndarray, list]:
    """Texts whose label is given by one keyword; the teacher's probabilities follow the keyword
    (0.8 on it, noisy elsewhere); a share ``labelled`` of rows carry a reference."""
    rng = random.Random(seed)
    texts, probs, refs = [], [], []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        words = rng.sample(FILLER, rng.randint(3, 8)) + [rng.choice(KEYWORDS[label])]
        rng.shuffle(words)
        texts.append(" ".join(words))
        p = np.array([rng.uniform(0.02, 0.2) for _ in LABELS])
        p[LABELS.index(label)] = 0.8
        probs.append(p / p.sum())
        refs.append(label if rng.random() < labelled else None)
    return texts, np.array(probs, dtype=np.float32), refs


def kd_data(n: int = 300, *, labelled: float = 0.5, seed: int = 0) -> loop.KDData:
    texts, probs, refs = keyword_set(n, seed=seed, labelled=labelled)
    return loop.KDData(texts=texts, probs=probs, labels=LABELS,
                       reference=np.array([LABELS.index(r) if r else -1 for r in refs]))


def fit(data, cfg, out_dir, **kw):
    return loop.fit(data, cfg, out_dir=out_dir,
                    new_student=lambda: students.new_student(cfg, labels=data.labels, texts=data.texts), **kw)


def test_ngram_student_learns_the_teacher_from_unlabelled_rows_alone(tmp_path):
    # No row has a reference: only the KD term trains the student.
    data = kd_data(labelled=0.0)
    cfg = TrainConfig(family="ngram", size="tiny", epochs=8, patience=3, val_fraction=0.2, batch_size=16)
    result = fit(data, cfg, tmp_path)
    best = next(h for h in result.history if h.epoch == result.best_epoch)
    assert best.val_agreement >= AGREEMENT_FLOOR
    assert best.val_accuracy is None and best.val_labelled == 0
    # It learnt: the validation loss fell from its first epoch.
    assert result.best_val_loss < result.history[0].val_loss


def test_tiny_transformer_student_reaches_the_stated_agreement(tmp_path):
    data = kd_data(labelled=0.5)
    cfg = TrainConfig(family="transformer", size="tiny", epochs=12, patience=3, val_fraction=0.2, batch_size=16)
    result = fit(data, cfg, tmp_path)
    predictor = students.load(result.best_dir)
    _, val_idx = loop.split_validation(len(data.texts), fraction=0.2, seed=cfg.seed)
    pred = predictor.predict_proba([data.texts[i] for i in val_idx]).argmax(axis=1)
    assert (pred == data.teacher_label[val_idx]).mean() >= AGREEMENT_FLOOR
    assert predictor.labels == LABELS


def test_checkpoints_hold_safetensors_config_and_optimizer_and_load(tmp_path):
    data = kd_data(120)
    cfg = TrainConfig(family="ngram", epochs=3, patience=5, batch_size=32)
    result = fit(data, cfg, tmp_path)
    last = loop.checkpoints(tmp_path)[result.epochs_done]
    assert {"model.safetensors", "student.json", "trainer_state.json", "optimizer.pt"} <= {
        p.name for p in last.iterdir()}
    state = loop.read_state(last)
    assert state["epoch"] == 3 and state["step"] == 3 * -(-result.n_train // 32)
    assert state["best_val_loss"] == pytest.approx(result.best_val_loss)
    assert state["config"]["family"] == "ngram"
    loaded = students.load(last)
    assert loaded.predict_proba(data.texts[:5]).shape == (5, 3)


def test_transformer_checkpoint_is_save_pretrained_with_its_tokenizer(tmp_path):
    data = kd_data(60)
    cfg = TrainConfig(family="transformer", epochs=1, batch_size=32)
    result = fit(data, cfg, tmp_path)
    names = {p.name for p in result.best_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "trainer_state.json", "optimizer.pt"} <= names
    assert students.load(result.best_dir).predict(["my invoice is wrong"])[0] in LABELS


class Crash(RuntimeError):
    pass


def test_a_crashed_run_resumes_at_the_next_epoch_without_redoing_the_first(tmp_path):
    data = kd_data(150)
    cfg = TrainConfig(family="ngram", epochs=4, patience=10, batch_size=32)

    def crash_after_first(report):
        if report.epoch == 1:
            raise Crash("killed after epoch 1")

    with pytest.raises(Crash):
        fit(data, cfg, tmp_path, on_epoch=crash_after_first)
    assert list(loop.checkpoints(tmp_path)) == [1]

    seen = []
    result = fit(data, cfg, tmp_path, on_epoch=lambda r: seen.append(r.epoch))
    assert result.resumed_from == 1
    assert seen == [2, 3, 4]
    assert [h.epoch for h in result.history] == [1, 2, 3, 4]
    # The step counter carries on from the checkpoint rather than restarting.
    steps_per_epoch = -(-result.n_train // 32)
    assert loop.read_state(loop.checkpoints(tmp_path)[4])["step"] == 4 * steps_per_epoch


def test_early_stopping_on_loss_ends_the_run_after_patience_epochs_without_improvement(tmp_path, monkeypatch):
    data = kd_data(90)
    cfg = TrainConfig(family="ngram", epochs=10, patience=2, batch_size=32, stop_on="loss")
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.1, 0.1])
    real = loop.evaluate

    def scripted(*a, **kw):
        return {**real(*a, **kw), "loss": next(losses)}

    monkeypatch.setattr(loop, "evaluate", scripted)
    result = fit(data, cfg, tmp_path)
    assert (result.epochs_done, result.best_epoch, result.stopped_early) == (4, 2, True)
    assert result.best_dir.name == "epoch-2"
    # Only the best and the last checkpoints are kept.
    assert list(loop.checkpoints(tmp_path)) == [2, 4]


def test_early_stopping_watches_validation_agreement_by_default(tmp_path, monkeypatch):
    # Agreement rises, then creeps up by less than min_delta (kept as best, patience spent), then falls.
    data = kd_data(90)
    cfg = TrainConfig(family="ngram", patience=2, batch_size=32, min_delta=0.01)
    agreements = iter([0.50, 0.80, 0.805, 0.70, 0.99])
    real = loop.evaluate

    def scripted(*a, **kw):
        return {**real(*a, **kw), "agreement": next(agreements)}

    monkeypatch.setattr(loop, "evaluate", scripted)
    result = fit(data, cfg, tmp_path)
    assert cfg.epochs == 40  # a cap, far beyond where the run ends
    assert (result.epochs_done, result.best_epoch, result.stop_reason) == (4, 3, "patience")
    assert result.best_dir.name == "epoch-3"


def test_a_time_budget_ends_the_run_after_the_epoch_that_crosses_it(tmp_path):
    data = kd_data(90)
    cfg = TrainConfig(family="ngram", patience=50, batch_size=32, max_seconds=1e-6)
    result = fit(data, cfg, tmp_path)
    assert (result.epochs_done, result.stop_reason, result.stopped_early) == (1, "time budget", True)


def test_a_wide_student_from_scratch_gets_the_lower_rate():
    """The default rate depends on where a transformer starts and how wide it is; n-gram students keep theirs."""
    from core.ml.config import DEFAULT_LR, PRETRAINED_LR, WIDE_LR, TrainConfig

    assert TrainConfig(family="transformer", size="small").effective_lr == DEFAULT_LR["transformer"]
    wide = TrainConfig(family="transformer", size="small", size_overrides={"hidden": 256, "heads": 4})
    assert wide.effective_lr == WIDE_LR
    assert TrainConfig(family="transformer", size="half-teacher").effective_lr == DEFAULT_LR["transformer"]
    assert TrainConfig(family="ngram", size="small").effective_lr == DEFAULT_LR["ngram"]
    assert TrainConfig(family="ngram", size="small", size_overrides={"dim": 512}).effective_lr == DEFAULT_LR["ngram"]
    assert TrainConfig(family="transformer", size="small", lr=1e-3,
                       size_overrides={"hidden": 256, "heads": 4}).effective_lr == 1e-3
    assert PRETRAINED_LR < WIDE_LR
