"""The demo's teacher: a BERT classifier trained here on generated tickets and saved as a model directory.

It stands in for the large model a real project would distil from, so the local
teacher adapter is used for real. Training runs as the "demo-teacher" job and
reports progress; the directory appears only once complete (written under a
temporary name, then renamed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.demo import tickets as demo_tickets
from core.domain.errors import InvalidInput
from core.ml import build
from core.ml.build import SIZES
from core.store.artifacts import data_dir
from core.store.jobs import JobContext, JobKind, handler

JOB_KIND = JobKind.DEMO_TEACHER
# The teacher learns from its own draw of the generator, not the project's prompt set, so it has
# never seen the project's holdout (as a teacher trained elsewhere would not have).
TEACHER_SEED = 20261124
# At most 16,000 rows of at most 64 tokens, one epoch: about 100 s on 2 quiet cores at the measured
# ~160 examples/s, so the demo's teacher is ready a couple of minutes after the demo starts.
MAX_ROWS = 16_000
MAX_LENGTH = 64
BATCH_SIZE = 32
LR = {"teacher": 1e-3}  # a 4-layer BERT from scratch stalls at 2e-3; the small sizes train well there
DEFAULT_LR = 2e-3
META_FILE = "teacher.json"

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TeacherResult:
    path: Path
    accuracy: float  # on the held-out split, against the reference labels
    n_train: int
    n_eval: int
    epochs: int
    seconds: float
    labels: list[str]

    def as_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def default_dir() -> Path:
    return data_dir() / "models" / "demo-teacher"


def train_teacher(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    epochs: int = 1,
    progress: Progress | None = None,
    size: str = "teacher",
    seed: int = 1234,
    text_column: str = "text",
    label_column: str = "queue",
    max_rows: int = MAX_ROWS,
    max_length: int = MAX_LENGTH,
    batch_size: int = BATCH_SIZE,
    lr: float | None = None,
    eval_fraction: float = 0.1,
    threads: int | None = None,
) -> TeacherResult:
    """Train a classifier of ``size`` on ``df`` (text → label) and save it to ``out_dir``.

    A fixed-seed ``eval_fraction`` of the rows is held out and scored; at most
    ``max_rows`` of the rest are trained on. ``progress(fraction, message)`` is
    called with fractions rising to 1.0. ``threads`` defaults to every core this
    process may use.
    """
    import torch

    from core.ml.students import TransformerStudent  # lazy: imports torch

    report = progress or (lambda fraction, message: None)
    started = time.monotonic()
    texts, labels, y = _rows(df, text_column, label_column)
    train_idx, eval_idx = _split(len(texts), eval_fraction=eval_fraction, max_rows=max_rows, seed=seed)

    report(0.0, "training the tokenizer")
    with _torch_threads(threads or _cpus()):
        train_texts = [texts[i] for i in train_idx]
        tokenizer = build.train_tokenizer(train_texts, max_length=max_length)
        torch.manual_seed(seed)
        model = build.build_classifier(size, labels=labels, vocab_size=len(tokenizer), max_length=max_length)
        # The student wrapper gives encoding, dynamic padding and batched prediction for any BERT classifier.
        net = TransformerStudent(model=model, tokenizer=tokenizer, max_length=max_length)
        report(0.03, f"training a {size} model on {len(train_idx):,} tickets")
        _fit(net, net.encode(train_texts), torch.from_numpy(y[train_idx]), epochs=epochs, batch_size=batch_size,
             lr=lr or LR.get(size, DEFAULT_LR), seed=seed, report=lambda f, m: report(0.03 + 0.87 * f, m))
        report(0.9, f"scoring {len(eval_idx):,} held-out tickets")
        pred = net.predict_proba([texts[i] for i in eval_idx], batch_size=128).argmax(axis=1)
    accuracy = float((pred == y[eval_idx]).mean())

    report(0.97, "saving the model directory")
    seconds = time.monotonic() - started
    result = TeacherResult(path=Path(out_dir), accuracy=accuracy, n_train=len(train_idx), n_eval=len(eval_idx),
                           epochs=epochs, seconds=round(seconds, 1), labels=labels)
    _save(model, tokenizer, result, meta={"size": size, "max_length": max_length, "seed": seed})
    report(1.0, f"teacher saved: held-out accuracy {accuracy:.3f}")
    return result


def _rows(df: pd.DataFrame, text_column: str, label_column: str) -> tuple[list[str], list[str], np.ndarray]:
    for column in (text_column, label_column):
        if column not in df.columns:
            raise InvalidInput(f"column {column}: the tickets have no such column; pass one of "
                               f"{', '.join(map(str, df.columns))}.", field=column)
    usable = df[df[text_column].notna() & df[label_column].notna()]
    labels = sorted(usable[label_column].astype(str).unique())
    if len(usable) < 20 or len(labels) < 2:
        raise InvalidInput(f"column {label_column}: training needs at least 20 labelled rows and 2 labels, "
                           f"found {len(usable)} rows and {len(labels)} labels; add labelled tickets.",
                           field=label_column)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[v] for v in usable[label_column].astype(str)], dtype=np.int64)
    return usable[text_column].astype(str).tolist(), labels, y


def _split(n: int, *, eval_fraction: float, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_eval = min(max(1, round(n * eval_fraction)), n - 1)
    return perm[n_eval:][:max_rows], perm[:n_eval]


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's thread count is process-wide: set it for the training, then give the caller's back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _batches(lengths: list[int], *, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of rows of similar length: less padding than a plain shuffle, still random."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [np.array(chunk[b:b + batch_size]) for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _fit(net, encoded: list[list[int]], y, *, epochs: int, batch_size: int, lr: float, seed: int,
         report: Progress) -> None:
    """Plain supervised training: AdamW, linear warm-up then decay, gradient clipping."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    lengths = [len(r) for r in encoded]
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, total // 20)
    opt = torch.optim.AdamW(net.module.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    net.module.train()
    step, running = 0, 0.0
    for epoch in range(1, epochs + 1):
        for idx in _batches(lengths, batch_size=batch_size, rng=rng):
            logits = net.logits(net.collate([encoded[i] for i in idx]))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.module.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running = loss.item() if step == 1 else 0.98 * running + 0.02 * loss.item()
            report(step / total, f"epoch {epoch}/{epochs}, step {step}/{total}, loss {running:.3f}")


def _save(model, tokenizer, result: TeacherResult, *, meta: dict) -> None:
    """Write the directory under a temporary name beside it, then swap it in."""
    from transformers.utils import logging as hf_logging

    out_dir = result.path
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its own bar would tear a job's terminal progress bar
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        info = {**result.as_dict(), **meta, "generated_by": __name__}
        info.pop("path")
        (tmp / META_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


@handler(JOB_KIND)
def demo_teacher_job(ctx: JobContext) -> dict:
    """Generate the teacher's tickets and train it. Params: out_dir, n, seed, epochs, size (all optional)."""
    params = ctx.params
    try:
        n = int(params.get("n", demo_tickets.DEFAULT_N))
        seed = int(params.get("seed", TEACHER_SEED))
        epochs = int(params.get("epochs", 1))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job #{ctx.job_id}: n, seed and epochs must be whole numbers ({exc}).",
                           field="params") from exc
    if n < 100 or not 1 <= epochs <= 20:
        raise InvalidInput(f"job #{ctx.job_id}: n must be at least 100 and epochs 1 to 20, got n={n}, "
                           f"epochs={epochs}.", field="params")
    size = str(params.get("size", "teacher"))
    if size not in SIZES:
        raise InvalidInput(f"job #{ctx.job_id}: size {size!r} is unknown; use one of {', '.join(SIZES)}.",
                           field="size")
    out_dir = Path(params["out_dir"]) if params.get("out_dir") else default_dir()
    ctx.progress(0.0, f"generating {n:,} tickets", force=True)
    tickets = demo_tickets.generate(n, seed)
    result = train_teacher(tickets, out_dir, epochs=epochs, size=size, progress=ctx.progress)
    ctx.progress(1.0, f"teacher saved to {out_dir}", force=True)
    return result.as_dict()
