"""The two student families behind one small interface, and their files on disk.

A student encodes texts once, collates encoded rows into a batch, returns
logits, saves itself to a directory (safetensors plus a JSON config) and loads
back as a predictor with ``predict_proba(texts)``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from core.domain.errors import InvalidInput
from core.ml import build, init
from core.ml.config import NGRAM_SIZES, TrainConfig
from core.ml.ngram import HashingFeaturizer, NgramClassifier, featurizer_of
from core.ml.ngram_array import STUDENT_FILE


class Student(Protocol):
    family: str
    labels: list[str]
    module: torch.nn.Module

    def encode(self, texts: list[str]) -> list[Any]: ...
    def collate(self, rows: list[Any]) -> dict[str, torch.Tensor]: ...
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...
    def save(self, path: Path) -> None: ...
    def predict_proba(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray: ...


class _Predicting:
    """predict_proba and predict shared by both families."""

    labels: list[str]
    module: torch.nn.Module
    runtime = "eager"  # what computes the logits: core.ml.lean puts a transformer behind onnx or torchscript
    lean_note = ""  # why a student that could have been lean answers eagerly (core.ml.lean.make_lean)

    def encode(self, texts: list[str]) -> list[Any]:
        raise NotImplementedError

    def collate(self, rows: list[Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def predict_proba(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (rows aligned with ``texts``, columns with ``labels``)."""
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out
        rows = self.encode(texts)
        # Sorting by length keeps padding (and so wasted work) small inside each batch.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        self.module.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                logits = self.logits(self.collate([rows[i] for i in idx]))
                out[idx] = torch.softmax(logits.float(), dim=-1).numpy()
        return out

    def predict(self, texts: list[str], *, batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size=batch_size).argmax(axis=1)]


class NgramStudent(_Predicting):
    family = "ngram"

    def __init__(self, *, labels: list[str], buckets: int, dim: int, mode: str = "mean",
                 char_ngrams: tuple[int, ...] | None = None):
        self.labels = list(labels)
        self.dim, self.mode = dim, mode
        self.featurizer = (HashingFeaturizer(buckets, char_ngrams=tuple(char_ngrams)) if char_ngrams
                           else HashingFeaturizer(buckets))
        self.module = NgramClassifier(buckets=buckets, dim=dim, num_labels=len(labels), mode=mode)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.featurizer.features(t) for t in texts]

    def collate(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        ids, offsets = self.featurizer.collate(rows)
        return {"ids": ids, "offsets": offsets}

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["ids"], batch["offsets"])

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.module.state_dict().items()}, str(path / "model.safetensors"))
        _write_json(path / STUDENT_FILE, {
            "family": self.family, "labels": self.labels, "dim": self.dim, "mode": self.mode,
            "featurizer": self.featurizer.config(),
        })

    @classmethod
    def load(cls, path: Path, meta: dict) -> NgramStudent:
        from safetensors.torch import load_file

        feat = featurizer_of(meta, path)
        student = cls(labels=meta["labels"], buckets=feat.buckets, dim=meta["dim"], mode=meta["mode"],
                      char_ngrams=feat.char_ngrams)
        student.module.load_state_dict(load_file(str(Path(path) / "model.safetensors")))
        return student


def pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows as (input_ids, attention_mask), padded to the longest row of this batch, not to max_length
    (dynamic padding: 2.5-4x faster here)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


class TransformerStudent(_Predicting):
    family = "transformer"

    def __init__(self, *, model, tokenizer, max_length: int = 128):
        self.module, self.tokenizer, self.max_length = model, tokenizer, max_length
        id2label = model.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.pad_id = tokenizer.pad_token_id or 0

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def collate(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        ids, mask = pad(rows, self.pad_id)
        return {"input_ids": ids, "attention_mask": mask}

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(**batch).logits

    def save(self, path: Path) -> None:
        from transformers.utils import logging as hf_logging

        path = Path(path)
        # save_pretrained draws its own bar, which would tear the job's terminal progress bar.
        was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.module.save_pretrained(str(path), safe_serialization=True)
        finally:
            if was_on:
                hf_logging.enable_progress_bar()
        self.tokenizer.save_pretrained(str(path))
        _write_json(path / STUDENT_FILE, {"family": self.family, "labels": self.labels,
                                          "max_length": self.max_length})

    @classmethod
    def load(cls, path: Path, meta: dict) -> TransformerStudent:
        return cls(model=build.load_classifier(path), tokenizer=build.load_tokenizer(path),
                   max_length=int(meta.get("max_length", 128)))


def new_student(cfg: TrainConfig, *, labels: list[str], texts: list[str], tokenizer_dir: Path | None = None,
                start_dir: Path | None = None):
    """A freshly initialised student of the configured family and size.

    The transformer takes the teacher's tokenizer when one is given, else trains
    one on ``texts`` (saved with every checkpoint, never retrained). Given ``start_dir`` (a pretrained encoder,
    the team's or pre-trained here), it is that encoder with its own tokenizer and a new head.
    """
    torch.manual_seed(cfg.seed)
    if start_dir is not None:
        return from_encoder(start_dir, labels=labels, max_length=cfg.max_length, seed=cfg.seed)
    if cfg.family == "ngram":
        base = NGRAM_SIZES.get(cfg.size, NGRAM_SIZES["tiny"])
        o = cfg.size_overrides
        return NgramStudent(labels=labels, buckets=o.get("buckets", base.buckets), dim=o.get("dim", base.dim),
                            mode=cfg.ngram_mode, char_ngrams=tuple(cfg.char_ngrams or ()) or None)
    size = transformer_size(cfg, tokenizer_dir)
    tokenizer = (build.load_tokenizer(tokenizer_dir) if tokenizer_dir
                 else build.train_tokenizer(texts, max_length=cfg.max_length))
    model = build.build_classifier(size, labels=labels, vocab_size=len(tokenizer), max_length=cfg.max_length)
    start = init_plan(cfg, tokenizer_dir)
    if start.from_teacher:
        init.copy_from_teacher(model, build.load_classifier(tokenizer_dir), start)
    return TransformerStudent(model=model, tokenizer=tokenizer, max_length=cfg.max_length)


def from_encoder(path: Path, *, labels: list[str], max_length: int, seed: int) -> TransformerStudent:
    """A student that is the encoder in ``path`` (any architecture transformers' Auto classes load) with its
    tokenizer and a new classification head for ``labels``: a head the directory brings (another task's) is
    re-initialised, so only the encoder's knowledge carries over."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    was = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights are newly initialised": the head, on purpose
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), local_files_only=True, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
    finally:
        hf_logging.set_verbosity(was)
    torch.manual_seed(seed)
    for name, child in model.named_children():
        if name != model.base_model_prefix:
            for module in child.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    limit = getattr(model.config, "max_position_embeddings", None) or max_length
    return TransformerStudent(model=model, tokenizer=build.load_tokenizer(path), max_length=min(max_length, limit))


def init_plan(cfg: TrainConfig, teacher_dir: Path | None) -> init.InitPlan:
    """How a transformer student of ``cfg`` starts: from the teacher's layers where it can (core.ml.init)."""
    if cfg.family != "transformer":
        return init.InitPlan(False, [], "")
    if cfg.student_init or cfg.domain_pretrain:
        return init.InitPlan(False, [], "")  # a pretrained start (core.training.jobs says which)
    if not cfg.init_from_teacher:
        return init.InitPlan(False, [], "initialised from the config, as asked")
    return init.plan(transformer_size(cfg, teacher_dir), init.teacher_config(teacher_dir),
                     shares_tokenizer=teacher_dir is not None)


def transformer_size(cfg: TrainConfig, teacher_dir: Path | None = None) -> build.Size:
    if cfg.size == init.HALF_TEACHER:
        return init.half_teacher(init.teacher_config(teacher_dir))
    base = build.SIZES.get(cfg.size, build.SIZES["tiny"])
    o = cfg.size_overrides
    return build.Size(cfg.size, o.get("layers", base.layers), o.get("hidden", base.hidden),
                      o.get("heads", base.heads), o.get("intermediate", base.intermediate))


def load(path: Path | str) -> NgramStudent | TransformerStudent:
    """A student saved by ``save`` (either family), ready to predict."""
    path = Path(path)
    meta_file = path / STUDENT_FILE
    if not meta_file.exists():
        raise InvalidInput(f"{path} holds no {STUDENT_FILE}: it is not a saved student.", field="checkpoint")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    cls = {"ngram": NgramStudent, "transformer": TransformerStudent}.get(meta.get("family"))
    if cls is None:
        raise InvalidInput(f"{meta_file} names an unknown family {meta.get('family')!r}.", field="checkpoint")
    return cls.load(path, meta)


@dataclass(frozen=True)
class Speed:
    examples_per_s: float  # batched
    ms_per_example: float  # batched
    single_p50_ms: float  # one request at a time
    single_p95_ms: float


def measure_speed(predictor, texts: list[str], *, batch_size: int = 64, singles: int = 200,
                  rounds: int = 3) -> Speed:
    """Batched throughput (best of ``rounds``) and single-request latency percentiles, measured here."""
    texts = list(texts)
    predictor.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up
    best = math.inf
    for _ in range(rounds):
        t = time.perf_counter()
        predictor.predict_proba(texts, batch_size=batch_size)
        best = min(best, time.perf_counter() - t)
    one = texts[:singles] or texts
    for text in one[:10]:
        predictor.predict_proba([text])
    lat = []
    for text in one:
        t = time.perf_counter()
        predictor.predict_proba([text])
        lat.append((time.perf_counter() - t) * 1000)
    return Speed(examples_per_s=len(texts) / best, ms_per_example=best * 1000 / len(texts),
                 single_p50_ms=float(np.percentile(lat, 50)), single_p95_ms=float(np.percentile(lat, 95)))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
