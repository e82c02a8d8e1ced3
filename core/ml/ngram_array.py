"""An n-gram student's featuriser and its numpy forward pass: what serving one needs, without torch.

Featurising is plain Python over a per-word cache; the forward pass is a lookup, a mean and one small matrix
product. core.ml.ngram holds the torch module that trains; this module imports torch only where a batch is
collated for training, so ``stillroom serve`` for an n-gram student runs without loading torch.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.domain.errors import InvalidInput

if TYPE_CHECKING:
    import torch

STUDENT_FILE = "student.json"  # a saved student's settings (core.ml.students writes it)
WORD = re.compile(r"\w+")  # a text's words, lower-cased first (the served inline scorer splits with it too)
_PAIR_MIX = 0x9E3779B1


def pair_bucket(prev: int, word: int, buckets: int) -> int:
    """The bucket of a word pair, from the two words' CRC-32s: the one rule the featuriser and the served inline
    scorer (core.serving.inline) share."""
    return ((prev * _PAIR_MIX) ^ word) % buckets
# Bumped whenever the features change: a saved model only works with the featuriser it was trained with.
FEATURIZER_VERSION = 1


class HashingFeaturizer:
    """Text → bucket ids of word unigrams, word bigrams and character n-grams of each word.

    Written here rather than taken from scikit-learn's HashingVectorizer: that
    would add scikit-learn and SciPy for one function, returns sparse matrices
    where an EmbeddingBag wants flat ids, and is slower per single request.
    CRC-32 is used because Python's ``hash`` changes from process to process.
    """

    def __init__(self, buckets: int, *, char_ngrams: tuple[int, ...] = (3, 4), cache_size: int = 200_000):
        self.buckets = int(buckets)
        self.char_ngrams = tuple(char_ngrams)
        self.cache_size = cache_size
        self._cache: dict[str, tuple[int, list[int]]] = {}

    def config(self) -> dict:
        return {"buckets": self.buckets, "char_ngrams": list(self.char_ngrams), "version": FEATURIZER_VERSION}

    def _word(self, word: str) -> tuple[int, list[int]]:
        hit = self._cache.get(word)
        if hit is None:
            h = zlib.crc32(word.encode())
            padded = f"<{word}>"
            grams = [padded[i:i + n] for n in self.char_ngrams for i in range(len(padded) - n + 1)]
            ids = [h % self.buckets] + [zlib.crc32(b"#" + g.encode()) % self.buckets for g in grams]
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            hit = self._cache[word] = (h, ids)
        return hit

    def features(self, text: str) -> list[int]:
        words = WORD.findall(text.lower())
        ids: list[int] = []
        prev = None
        for w in words:
            h, word_ids = self._word(w)
            ids.extend(word_ids)
            if prev is not None:
                ids.append(pair_bucket(prev, h, self.buckets))
            prev = h
        return ids

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets for an EmbeddingBag."""
        return self.collate([self.features(t) for t in texts])

    @staticmethod
    def collate(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch  # here, not at the top: a served n-gram student never collates, and never loads torch

        offsets, flat, at = [], [], 0
        for r in rows:
            offsets.append(at)
            flat.extend(r)
            at += len(r)
        return torch.tensor(flat, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def featurizer_of(meta: dict, path: Path) -> HashingFeaturizer:
    """The featuriser a saved n-gram student (its ``student.json`` as ``meta``) was trained with; refused when
    this code's features are not the ones it learned."""
    feat = meta["featurizer"]
    if feat.get("version") != FEATURIZER_VERSION:
        raise InvalidInput(f"{path} was saved by featuriser version {feat.get('version')}, this code has "
                           f"{FEATURIZER_VERSION}: retrain the student.", field="checkpoint")
    return HashingFeaturizer(feat["buckets"], char_ngrams=tuple(feat["char_ngrams"]))


class ArrayNgram:
    """A trained n-gram student's forward pass in numpy, for serving one request at a time.

    The same probabilities as the torch module (float32 throughout) without torch's fixed cost per call, about
    0.2 ms of the 0.25 ms a served request took: a lookup of the request's rows, their mean, one small matrix
    product. Built from a loaded student (``of``) or straight from its directory (``load``: numpy and safetensors
    alone, so a served n-gram student's process never imports torch), and read-only after that.
    """

    family = "ngram"

    def __init__(self, *, featurizer: HashingFeaturizer, weights: dict[str, np.ndarray], labels: list[str],
                 mode: str):
        self.featurizer, self.labels, self.mode = featurizer, list(labels), mode
        self.embedding = np.array(weights["bag.weight"], dtype=np.float32)  # copies: later training never shows
        self.weight_t = np.array(weights["out.weight"].T, dtype=np.float32, order="C")  # (dim, labels)
        self.bias = np.array(weights["out.bias"], dtype=np.float32)
        self._ones = np.ones(4096, dtype=np.float32)
        # A mean or a sum of rows commutes with the linear layer: each bucket's label scores, computed once (a
        # smaller table while there are fewer labels than dimensions), and a request sums its rows of those: the
        # same probabilities to float32 rounding, for less work per request than the bag and the product.
        narrower = len(self.labels) < self.embedding.shape[1]
        self.scores = self.embedding @ self.weight_t if self.mode != "max" and narrower else None

    @classmethod
    def of(cls, student) -> ArrayNgram:
        """From a loaded NgramStudent (its torch weights copied out)."""
        weights = {k: v.detach().cpu().numpy() for k, v in student.module.state_dict().items()}
        return cls(featurizer=student.featurizer, weights=weights, labels=student.labels,
                   mode=student.module.bag.mode)

    @property
    def weights_bytes(self) -> int:
        """The trained weights' bytes (the table, the output layer), as a torch module's parameters count them."""
        return self.embedding.nbytes + self.weight_t.nbytes + self.bias.nbytes

    @staticmethod
    def holds_ngram(path: Path | str) -> bool:
        """Whether ``path`` holds a saved n-gram student (its student.json says so)."""
        meta = Path(path) / STUDENT_FILE
        return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("family") == "ngram"

    @classmethod
    def load(cls, path: Path | str) -> ArrayNgram:
        """From a directory NgramStudent.save wrote: its student.json and model.safetensors, read as numpy."""
        from safetensors.numpy import load_file

        path = Path(path)
        meta = json.loads((path / STUDENT_FILE).read_text(encoding="utf-8"))
        if meta.get("family") != cls.family:
            raise InvalidInput(f"{path} holds a {meta.get('family')} student, not an n-gram one.",
                               field="checkpoint")
        return cls(featurizer=featurizer_of(meta, path), weights=load_file(str(path / "model.safetensors")),
                   labels=meta["labels"], mode=meta["mode"])

    def _bag(self, ids: list[int], table: np.ndarray) -> np.ndarray:
        if not ids:  # an EmbeddingBag's empty bag is zeros, whatever the mode
            return np.zeros(table.shape[1], dtype=np.float32)
        rows = table.take(np.array(ids, dtype=np.intp), axis=0)
        if self.mode == "max":
            return rows.max(axis=0)
        total = self._ones[:len(ids)] @ rows if len(ids) <= len(self._ones) else rows.sum(axis=0)  # dot: faster
        return total * np.float32(1 / len(ids)) if self.mode == "mean" else total

    def predict_proba(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (rows aligned with ``texts``, columns with ``labels``); ``batch_size`` is ignored."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        table = self.embedding if self.scores is None else self.scores
        if len(texts) == 1:  # a served request: one row, fewer array calls
            bags = self._bag(self.featurizer.features(texts[0]), table)[None]
        else:
            bags = np.empty((len(texts), table.shape[1]), dtype=np.float32)
            for i, text in enumerate(texts):
                bags[i] = self._bag(self.featurizer.features(text), table)
        logits = (bags if self.scores is not None else bags @ self.weight_t) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits
