"""The local teacher: a transformers sequence-classification model directory, run in batches.

Texts are tokenized once, sorted by length and padded only to the longest in
each batch (2.5-4x faster than a fixed length on short inputs), then put back
in their original order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from core.domain.errors import InvalidInput
from core.ml.build import load_classifier, load_tokenizer
from core.ml.device import check_name, pick, to
from core.teacher import ray_engine
from core.teacher.outputs import Prediction, Progress, check_labels

STILLROOM_MODEL_FILE = "student.json"  # core.ml.students.STUDENT_FILE, named here to keep torch out


def is_stillroom_model(model_dir: Path | str) -> bool:
    """A directory Stillroom saved a model of its own n-gram family to (no transformers config)."""
    return (Path(model_dir) / STILLROOM_MODEL_FILE).is_file() and not (Path(model_dir) / "config.json").is_file()


def model_labels(model_dir: Path | str) -> list[str]:
    """The label names of a saved classifier, from its config's id2label (no torch needed)."""
    if is_stillroom_model(model_dir):
        meta = Path(model_dir) / STILLROOM_MODEL_FILE
        try:
            labels = json.loads(meta.read_text(encoding="utf-8")).get("labels") or []
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{meta} cannot be read ({exc}): save the model again.", field="model_dir") from None
        return check_labels(list(labels), where=f"{meta} labels")
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        raise InvalidInput(f"{model_dir} is not a model directory (it has no config.json): give the folder a "
                           "transformers classifier was saved to with save_pretrained.", field="model_dir")
    try:
        id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{config} cannot be read ({exc}): save the model again.", field="model_dir") from None
    ordered = [id2label[k] for k in sorted(id2label, key=int)]
    return check_labels(ordered, where=f"{config} id2label")


class LocalAdapter:
    """Batched inference of a saved classifier under ``torch.inference_mode``: a transformers directory, or a
    model of Stillroom's own n-gram family (a larger one can teach, as in the demo's language project)."""

    name = "local"

    def __init__(self, model_dir: Path | str, *, batch_size: int = 64, max_length: int | None = None,
                 device: str | None = None, ray: ray_engine.RayPlan | None = None):
        if batch_size < 1:
            raise InvalidInput("batch_size: must be at least 1.", field="batch_size")
        self.device_name = check_name(device)  # a GPU when one is present (core.ml.device), picked at load
        self.model_dir = Path(model_dir)
        self.labels = model_labels(self.model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        self.ray = ray  # None: batches run in this process; a plan: across Ray workers (core.teacher.ray_engine)
        self._model = None
        self._tokenizer = None
        self._device = None

    def load(self) -> None:
        """Load the model now rather than at the first batch (each Ray worker does, once, when it starts)."""
        if is_stillroom_model(self.model_dir):
            self._load_stillroom()
        else:
            self._load()

    def _load(self):
        if self._model is None:
            self._device = pick(self.device_name)
            self._tokenizer = load_tokenizer(self.model_dir)
            self._model = load_classifier(self.model_dir).eval().to(self._device)
        return self._model, self._tokenizer

    def _load_stillroom(self):
        if self._model is None:
            from core.ml.students import load  # lazy: imports torch

            self._model = load(self.model_dir)
        return self._model

    def _limit(self, model, tokenizer) -> int:
        limits = [self.max_length, getattr(model.config, "max_position_embeddings", None)]
        if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
            limits.append(tokenizer.model_max_length)
        return min(x for x in limits if x)

    def predict(self, texts: Sequence[str], *, labels: list[str] | None = None,
                progress: Progress | None = None) -> list[Prediction]:
        if labels is not None and list(labels) != self.labels:
            raise InvalidInput(f"the model in {self.model_dir} predicts {self.labels}, not {list(labels)}: "
                               "run it with its own labels.", field="labels")
        if not texts:
            return []
        probs = self.predict_proba(texts, progress=progress)
        best = probs.argmax(axis=1)
        return [Prediction(label=self.labels[k], confidence=float(p[k]), probs=[float(x) for x in p],
                           raw=self.labels[k]) for k, p in zip(best.tolist(), probs, strict=True)]

    def predict_proba(self, texts: Sequence[str], *, progress: Progress | None = None):
        """An (n, k) array of probabilities in label order, rows in the order of ``texts``."""
        if self.ray is not None:  # the workers load the model; this process only sends texts and gathers answers
            return ray_engine.predict_proba(self, texts, plan=self.ray, progress=progress)
        import numpy as np
        import torch

        if is_stillroom_model(self.model_dir):
            return self._load_stillroom().predict_proba(list(texts), batch_size=self.batch_size)
        model, tokenizer = self._load()
        encoded = tokenizer(list(texts), truncation=True, max_length=self._limit(model, tokenizer))
        ids = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), len(self.labels)), dtype=np.float32)
        pad = tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                tensors = _pad([ids[i] for i in batch], pad, has_types="token_type_ids" in encoded)
                logits = model(**to(tensors, self._device)).logits
                out[batch] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                if progress:
                    done = min(start + self.batch_size, len(order))
                    progress(done / len(order), f"{done:,} of {len(order):,} texts")
        return out


def _pad(rows: list[list[int]], pad_id: int, *, has_types: bool) -> dict:
    """Pad a batch to its longest row (dynamic padding, the students' own), with token types where it takes them."""
    import torch

    from core.ml.students import pad  # lazy: torch, loaded only when the teacher runs

    input_ids, mask = pad(rows, pad_id)
    tensors = {"input_ids": input_ids, "attention_mask": mask}
    if has_types:
        tensors["token_type_ids"] = torch.zeros_like(input_ids)
    return tensors
