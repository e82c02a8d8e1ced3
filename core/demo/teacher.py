"""The demo's teacher: a BERT classifier trained here on generated tickets and saved as a model directory.

It stands in for the large model a real project would distil from, so the local
teacher adapter is used for real. Training runs as the "demo-teacher" job and
reports progress; the directory appears only once complete (written under a
temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from core.demo import tickets as demo_tickets
from core.domain.errors import InvalidInput
from core.ml import build
from core.ml.config import TrainConfig
from core.ml.data import KDData
from core.store.jobs import JobContext, JobKind, handler
from core.teacher.runs import demo_model_dir

if TYPE_CHECKING:
    from core.ml.loop import FitResult
    from core.ml.students import TransformerStudent
JOB_KIND = JobKind.DEMO_TEACHER
# The teacher learns from its own draw of the generator, not the project's prompt set, so it has
# never seen the project's holdout (as a teacher trained elsewhere would not have).
TEACHER_SEED = 20261124
# At most 16,000 rows of at most 64 tokens, one epoch, on one thread: 500 steps of the 2-layer teacher
# (build.SIZES["teacher"]), about 0.05 s of CPU each, so the whole demo setup needs well under a minute of CPU
# and fits its promise on 2 shared cores (the 4-layer, 256-wide teacher it replaces needed five times that).
MAX_ROWS = 16_000
MAX_LENGTH = 64
BATCH_SIZE = 32
# One thread: a sum split over more threads is added in another order, so the teacher (and the story its
# student tells on the holdout) would change with the machine's core count.
THREADS = 1
META_FILE = "teacher.json"

Progress = Callable[[float, str], None]


class DemoTeacherParams(BaseModel):
    """The "demo-teacher" job's params, all optional (their range is checked when the job runs)."""

    model_config = ConfigDict(extra="forbid")
    out_dir: str | None = None
    n: int | None = None
    seed: int | None = None
    epochs: int | None = None
    size: str | None = None


class DemoTeacherResult(BaseModel):
    path: str
    accuracy: float
    n_train: int
    n_eval: int
    epochs: int
    seconds: float
    cpu_seconds: float = 0.0
    labels: list[str] = []


@dataclass(frozen=True)
class TeacherResult:
    path: Path
    accuracy: float  # on the held-out split, against the reference labels
    n_train: int
    n_eval: int
    epochs: int
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time, every thread's: what a loaded machine cannot shrink
    labels: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def default_dir() -> Path:
    return demo_model_dir()


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

    It trains with the product's own loop (``core.ml.loop.fit``), supervised: the targets are the reference
    labels (one-hot) and α = 0, so the loss is cross-entropy alone. A fixed-seed ``eval_fraction`` of the rows is
    the loop's validation split, held out and scored; at most ``max_rows`` of the rest are trained on, and the
    epoch that scored best there is saved. ``progress(fraction, message)`` is called with fractions rising to
    1.0. It runs on ``threads`` (one by default, see THREADS) with torch's deterministic algorithms and a
    tokenizer built the same way everywhere, so the same tickets and seed give the same teacher.
    """
    report = progress or (lambda fraction, message: None)
    started, cpu_started = time.monotonic(), time.process_time()
    texts, labels, y = _rows(df, text_column, label_column)
    keep = _capped(len(texts), eval_fraction=eval_fraction, max_rows=max_rows, seed=seed)
    data = KDData(texts=[texts[i] for i in keep], probs=np.eye(len(labels), dtype=np.float32)[y[keep]],
                  reference=y[keep], labels=labels)
    cfg = _config(size, epochs=epochs, seed=seed, max_length=max_length, batch_size=batch_size,
                  lr=lr, eval_fraction=eval_fraction)

    report(0.0, "training the tokenizer")
    with deterministic(threads or THREADS), tempfile.TemporaryDirectory(prefix="demo-teacher-") as work:
        fitted, best = _fit(data, cfg, Path(work), size=size, report=report)
        report(0.9, f"keeping epoch {fitted.best_epoch}, the best on the held-out tickets")
        accuracy = next(e.val_accuracy for e in fitted.history if e.epoch == fitted.best_epoch) or 0.0
        report(0.97, "saving the model directory")
        result = TeacherResult(path=Path(out_dir), accuracy=accuracy, n_train=fitted.n_train, n_eval=fitted.n_val,
                               epochs=epochs, seconds=round(time.monotonic() - started, 1),
                               cpu_seconds=round(time.process_time() - cpu_started, 1), labels=labels)
        _save(best.module, best.tokenizer, result, meta={"size": size, "max_length": max_length, "seed": seed})
    report(1.0, f"teacher saved: held-out accuracy {accuracy:.3f}")
    return result


def _config(size: str, *, epochs: int, seed: int, max_length: int, batch_size: int, lr: float | None,
            eval_fraction: float) -> TrainConfig:
    """The loop's settings for supervised training: α = 0 (cross-entropy on the references only), every epoch
    run (patience = epochs), the held-out share as its validation split. The size is given by its fields, since
    a student run's config refuses the teacher's size by name."""
    fields = build.SIZES[size]
    return TrainConfig(
        family="transformer", size=size, epochs=epochs, batch_size=batch_size, lr=lr, alpha=0.0, temperature=1.0,
        patience=epochs, val_fraction=eval_fraction, seed=seed, max_length=max_length, init_from_teacher=False,
        size_overrides={"layers": fields.layers, "hidden": fields.hidden, "heads": fields.heads,
                        "intermediate": fields.intermediate})


def _capped(n: int, *, eval_fraction: float, max_rows: int, seed: int) -> np.ndarray:
    """The rows to use: all of them, or (when more than ``max_rows`` would be trained on) a fixed-seed sample
    whose training share is ``max_rows``."""
    if n - round(n * eval_fraction) <= max_rows:
        return np.arange(n)
    keep = min(n, round(max_rows / (1 - eval_fraction)))
    return np.sort(np.random.default_rng(seed).permutation(n)[:keep])


def _fit(data: KDData, cfg: TrainConfig, work: Path, *, size: str,
         report: Progress) -> tuple[FitResult, TransformerStudent]:
    """``core.ml.loop.fit`` on a fresh model of ``size``, and the best epoch's model loaded back."""
    # torch loads here, not when the module is imported: registering the job kind must not cost torch's import.
    import torch

    from core.ml import loop, students  # lazy: imports torch

    train_idx, _ = loop.split_validation(len(data.texts), fraction=cfg.val_fraction, seed=cfg.seed)
    tokenizer = build.fixed_tokenizer([data.texts[i] for i in train_idx], max_length=cfg.max_length)

    def new_student() -> students.TransformerStudent:
        torch.manual_seed(cfg.seed)
        model = build.build_classifier(size, labels=data.labels, vocab_size=len(tokenizer),
                                       max_length=cfg.max_length)
        return students.TransformerStudent(model=model, tokenizer=tokenizer, max_length=cfg.max_length)

    report(0.03, f"training a {size} model on {len(train_idx):,} tickets")

    def on_step(s: loop.StepReport) -> None:
        report(0.03 + 0.87 * s.fraction, f"epoch {s.epoch}/{cfg.epochs}, step {s.step}, loss {s.train_loss:.3f}")

    def on_epoch(e: loop.EpochReport) -> None:
        report(0.03 + 0.87 * e.epoch / cfg.epochs, f"epoch {e.epoch}/{cfg.epochs}, loss {e.train_loss:.3f}, "
                                                   f"held-out accuracy {e.val_accuracy or 0.0:.3f}")

    fitted = loop.fit(data, cfg, out_dir=work, new_student=new_student, on_step=on_step, on_epoch=on_epoch)
    best = students.load(fitted.best_dir)
    assert isinstance(best, students.TransformerStudent)  # noqa: S101 (new_student builds only this family)
    return fitted, best


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


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """torch's thread count and determinism are process-wide: set them for the training, then give the
    caller's back."""
    import torch

    before, was_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(was_deterministic)


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


@handler(JOB_KIND, params=DemoTeacherParams, result=DemoTeacherResult)
def demo_teacher_job(ctx: JobContext) -> DemoTeacherResult:
    """Generate the teacher's tickets and train it. Params: out_dir, n, seed, epochs, size (all optional)."""
    params = ctx.read(DemoTeacherParams)
    n = demo_tickets.DEFAULT_N if params.n is None else params.n
    seed = TEACHER_SEED if params.seed is None else params.seed
    epochs = 1 if params.epochs is None else params.epochs
    if n < 100 or not 1 <= epochs <= 20:
        raise InvalidInput(f"job #{ctx.job_id}: n must be at least 100 and epochs 1 to 20, got n={n}, "
                           f"epochs={epochs}.", field="params")
    size = params.size or "teacher"
    if size not in build.SIZES:
        raise InvalidInput(f"job #{ctx.job_id}: size {size!r} is unknown; use one of {', '.join(build.SIZES)}.",
                           field="size")
    out_dir = Path(params.out_dir) if params.out_dir else default_dir()
    ctx.progress(0.0, f"generating {n:,} tickets", force=True)
    tickets = demo_tickets.generate(n, seed)
    result = train_teacher(tickets, out_dir, epochs=epochs, size=size, progress=ctx.progress)
    ctx.progress(1.0, f"teacher saved to {out_dir}", force=True)
    return DemoTeacherResult.model_validate(result.as_dict())
