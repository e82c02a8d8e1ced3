"""The distillation loop: validation split, epochs, early stopping, checkpoints, resume.

Early stopping watches validation agreement with the teacher by default: ``epochs`` is only a cap, and the
run ends after ``patience`` epochs in which agreement did not rise by ``min_delta`` (or at ``max_seconds``).

Free of the database: the job in ``core.training.jobs`` feeds it rows and
records what it reports. Checkpoints follow nanoGPT: each carries the config,
the epoch, the step and the best validation loss beside the weights, and the
optimizer state next to them, so a crashed run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.ml import device as devices
from core.ml import layers, students
from core.ml.config import TrainConfig
from core.ml.data import KDData
from core.ml.kd import kd_loss

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class StepReport:
    epoch: int
    step: int
    train_loss: float
    fraction: float  # of the whole run, for progress bars


@dataclass
class EpochReport:
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_agreement: float  # share of validation rows where the student's top label is the teacher's
    val_accuracy: float | None  # against references, where the validation rows have them
    val_labelled: int
    improved: bool
    seconds: float


@dataclass
class FitResult:
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    history: list[EpochReport]
    best_dir: Path
    resumed_from: int | None  # the epoch of the checkpoint this call resumed from
    n_train: int
    n_val: int
    stop_reason: str = ""
    losses: layers.LossPlan = field(default_factory=layers.LossPlan)  # which losses trained the student, and why


@dataclass
class _State:
    epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    best_agreement: float = -1.0
    stop_reason: str = ""  # "patience", "time budget" or "max epochs"


# Rows are sorted by length within windows of this many batches of the shuffled order, then cut into batches.
BUCKET_BATCHES = 32


def length_batches(order: np.ndarray, encoded: list, bs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The epoch's batches: ``order`` cut into windows of ``BUCKET_BATCHES`` batches, each window's rows sorted by
    their encoded length and cut into batches of ``bs``, and the batches shuffled. Why: a batch is padded to its
    longest row, so a random batch of short chat lines with one long one costs the long one's length for every row;
    on the language-identification benchmark (benchmarks/bench_strong_teacher.py) most padded length was padding.
    Every row is still seen once an epoch, in ``ceil(len(order) / bs)`` batches, in a seeded order."""
    window = bs * BUCKET_BATCHES
    out: list[np.ndarray] = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        part = part[np.argsort([len(encoded[i]) for i in part], kind="stable")]
        out += [part[b:b + bs] for b in range(0, len(part), bs)]
    return [out[i] for i in rng.permutation(len(out))]


def split_validation(n: int, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation): a fixed-seed shuffle, at least one row on each side."""
    if n < 2:
        raise ValueError("need at least two rows to split off a validation set")
    n_val = min(max(1, round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def checkpoints(out_dir: Path) -> dict[int, Path]:
    """Complete epoch checkpoints under ``out_dir`` by epoch (half-written ones are never named epoch-N)."""
    found = {}
    for p in Path(out_dir).glob("epoch-*"):
        if p.is_dir() and p.name.removeprefix("epoch-").isdigit() and (p / STATE_FILE).exists():
            found[int(p.name.removeprefix("epoch-"))] = p
    return dict(sorted(found.items()))


def read_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / STATE_FILE).read_text(encoding="utf-8"))


def fit(
    data: KDData,
    cfg: TrainConfig,
    *,
    out_dir: Path,
    new_student: Callable[[], students.Student],
    on_step: Callable[[StepReport], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    teacher_dir: Path | None = None,
) -> FitResult:
    """Distil into a student, resuming from the last checkpoint in ``out_dir`` when there is one.

    With ``teacher_dir`` (a local transformers teacher) and hidden-state or attention weights above 0, the
    teacher runs beside the student and its layers teach the student's (core.ml.layers); the result says which
    losses were used. Each epoch's checkpoint is written before ``on_epoch`` is called, so a crash
    in the caller's bookkeeping never costs a finished epoch.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_idx, val_idx = split_validation(len(data.texts), fraction=cfg.val_fraction, seed=cfg.seed)
    bs = cfg.effective_batch_size
    steps_per_epoch = math.ceil(len(train_idx) / bs)
    total_steps = cfg.epochs * steps_per_epoch

    found = checkpoints(out_dir)
    resumed_from = max(found) if found else None
    student = students.load(found[resumed_from]) if found else new_student()
    device = devices.pick(cfg.device)  # before the optimizer, so its state lives beside the weights
    student.module.to(device)
    losses = layers.plan(cfg, student, teacher_dir, data.texts)
    distill = layers.distiller(losses, teacher_dir, student.module, device) if losses.layered else None
    params = [*student.module.parameters(), *(distill.trainable() if distill else [])]
    opt = torch.optim.AdamW(params, lr=cfg.effective_lr, weight_decay=0.01)
    warmup = max(1, total_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    state = _State()
    if found:
        state = _restore(found[resumed_from], opt, sched, distill)

    encoded = student.encode(data.texts)
    probs = torch.from_numpy(data.probs).to(device)
    ref = torch.from_numpy(data.reference).to(device)
    log_every = max(1, steps_per_epoch // cfg.points_per_epoch) if cfg.points_per_epoch else 0

    began = time.monotonic()
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.stopped:
            break
        started = time.monotonic()
        student.module.train()
        # A fixed shuffle per epoch, so a resumed run sees the same order it would have.
        rng = np.random.default_rng(cfg.seed + epoch)
        order = train_idx[rng.permutation(len(train_idx))]
        running, seen = 0.0, 0
        for b, idx in enumerate(length_batches(order, encoded, bs, rng)):
            batch = devices.to(student.collate([encoded[i] for i in idx]), device)
            loss = batch_loss(student, batch, probs[idx], ref[idx], cfg, distill, rows=idx.tolist())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            state.step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
            if on_step and log_every and (b + 1) % log_every == 0 and b + 1 < steps_per_epoch:
                on_step(StepReport(epoch, state.step, running / seen,
                                   ((epoch - 1) * steps_per_epoch + b + 1) / total_steps))
            if cfg.max_seconds and time.monotonic() - began >= cfg.max_seconds:
                break  # the time limit ends the epoch here: one transformer epoch can outlast a whole budget
        report = _end_epoch(student, data, encoded, val_idx, cfg, state, epoch, running / max(1, seen), started)
        if not state.stopped and cfg.max_seconds and time.monotonic() - began >= cfg.max_seconds:
            state.stopped, state.stop_reason = True, "time budget"
        _save(out_dir, epoch, student, opt, sched, state, cfg, distill)
        if on_epoch:
            on_epoch(report)

    found = checkpoints(out_dir)
    return FitResult(
        epochs_done=state.epoch, best_epoch=state.best_epoch, best_val_loss=state.best_val_loss,
        stopped_early=state.stopped and state.epoch < cfg.epochs,
        history=[EpochReport(**h) for h in state.history], best_dir=found[state.best_epoch],
        resumed_from=resumed_from, n_train=len(train_idx), n_val=len(val_idx), stop_reason=state.stop_reason,
        losses=losses,
    )


def batch_loss(student, batch: dict[str, torch.Tensor], probs: torch.Tensor, ref: torch.Tensor, cfg: TrainConfig,
               distill: layers.LayerDistiller | None = None, *, rows: list[int] | None = None) -> torch.Tensor:
    """One step's loss: the soft-label loss, plus the weighted layer terms when ``distill`` is given (``rows``:
    the batch's row indices, under which the teacher's states are kept for later epochs)."""
    if distill is None:
        return kd_loss(student.logits(batch), probs, ref, temperature=cfg.temperature, alpha=cfg.alpha)
    out = distill.forward_student(student.module, batch)
    soft = kd_loss(out.logits, probs, ref, temperature=cfg.temperature, alpha=cfg.alpha)
    return soft + distill.loss(out, batch, rows)


def _end_epoch(student, data: KDData, encoded: list, val_idx: np.ndarray, cfg: TrainConfig, state: _State,
               epoch: int, train_loss: float, started: float) -> EpochReport:
    val = evaluate(student, data, val_idx, cfg, encoded=encoded)
    progress, improved = _judge(val, state, cfg)
    if improved:
        state.best_val_loss, state.best_epoch = val["loss"], epoch
        state.best_agreement = max(state.best_agreement, val["agreement"])
    state.bad_epochs = 0 if progress else state.bad_epochs + 1
    state.epoch = epoch
    if state.bad_epochs >= cfg.patience:
        state.stopped, state.stop_reason = True, "patience"
    elif epoch >= cfg.epochs:
        state.stopped, state.stop_reason = True, "max epochs"
    report = EpochReport(epoch, state.step, train_loss, val["loss"], val["agreement"], val["accuracy"],
                         val["labelled"], improved, time.monotonic() - started)
    state.history.append(asdict(report))
    return report


def _judge(val: dict, state: _State, cfg: TrainConfig) -> tuple[bool, bool]:
    """(progress, best): whether this epoch resets the patience, and whether it becomes the best checkpoint.

    Watching agreement, progress is a rise of more than ``min_delta`` over the best so far. The best checkpoint
    is the highest agreement (a lower loss breaks a tie), so a rise smaller than ``min_delta`` is kept as the
    best but still spends patience: a plateau ends the run.
    """
    if cfg.stop_on == "loss":
        better = val["loss"] < state.best_val_loss - 1e-6
        return better, better
    agreement, best = val["agreement"], state.best_agreement
    rose = agreement > best + cfg.min_delta
    better = agreement > best or (agreement == best and val["loss"] < state.best_val_loss - 1e-6)
    return rose, better


def evaluate(student, data: KDData, idx: np.ndarray, cfg: TrainConfig, *, encoded: list | None = None) -> dict:
    """KD loss, agreement with the teacher and accuracy against references on the rows ``idx``."""
    encoded = encoded if encoded is not None else student.encode(data.texts)
    student.module.eval()
    chunks = []
    with torch.inference_mode():
        device = next(student.module.parameters()).device
        for start in range(0, len(idx), 256):
            part = idx[start:start + 256]
            chunks.append(student.logits(devices.to(student.collate([encoded[i] for i in part]), device)).cpu())
    logits = torch.cat(chunks)
    probs, ref = torch.from_numpy(data.probs[idx]), torch.from_numpy(data.reference[idx])
    loss = kd_loss(logits, probs, ref, temperature=cfg.temperature, alpha=cfg.alpha).item()
    pred = logits.argmax(dim=-1).numpy()
    labelled = data.reference[idx] >= 0
    accuracy = float((pred[labelled] == data.reference[idx][labelled]).mean()) if labelled.any() else None
    return {"loss": loss, "agreement": float((pred == data.teacher_label[idx]).mean()),
            "accuracy": accuracy, "labelled": int(labelled.sum())}


def _save(out_dir: Path, epoch: int, student, opt, sched, state: _State, cfg: TrainConfig,
          distill: layers.LayerDistiller | None) -> None:
    """Write epoch-N atomically (a temporary directory renamed), then drop all but the last and the best."""
    tmp = out_dir / f".epoch-{epoch}.tmp"
    final = out_dir / f"epoch-{epoch}"
    shutil.rmtree(tmp, ignore_errors=True)
    student.save(tmp)
    # The projection is not part of the student (it is dropped after training) but a resumed run needs it.
    projection = distill.projection.state_dict() if distill and distill.projection is not None else None
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(), "layer_projection": projection}, tmp / OPTIMIZER_FILE)
    (tmp / STATE_FILE).write_text(json.dumps({
        "config": cfg.model_dump(mode="json"), "family": student.family, "labels": student.labels,
        **asdict(state),
    }, indent=2), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for e, path in checkpoints(out_dir).items():
        if e not in (epoch, state.best_epoch):
            shutil.rmtree(path, ignore_errors=True)


def _restore(ckpt: Path, opt, sched, distill: layers.LayerDistiller | None) -> _State:
    saved = torch.load(ckpt / OPTIMIZER_FILE, weights_only=True, map_location="cpu")  # the optimizer moves it
    if distill is not None and distill.projection is not None and saved.get("layer_projection"):
        distill.projection.load_state_dict(saved["layer_projection"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    raw = read_state(ckpt)
    return _State(**{k: raw[k] for k in _State.__dataclass_fields__ if k in raw})
