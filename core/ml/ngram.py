"""The n-gram student family: hashed word and character n-grams into an EmbeddingBag.

For the tightest latency budgets: featurising is plain Python over a per-word
cache and the model is one EmbeddingBag and a linear layer, so a single request
costs a fraction of a millisecond.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import torch
from torch import nn

_WORD = re.compile(r"\w+")
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
        words = _WORD.findall(text.lower())
        ids: list[int] = []
        prev = None
        for w in words:
            h, word_ids = self._word(w)
            ids.extend(word_ids)
            if prev is not None:
                ids.append(((prev * 0x9E3779B1) ^ h) % self.buckets)
            prev = h
        return ids

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets for an EmbeddingBag."""
        return self.collate([self.features(t) for t in texts])

    @staticmethod
    def collate(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, flat, at = [], [], 0
        for r in rows:
            offsets.append(at)
            flat.extend(r)
            at += len(r)
        return torch.tensor(flat, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class NgramClassifier(nn.Module):
    def __init__(self, *, buckets: int, dim: int, num_labels: int, mode: str = "mean"):
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode=mode)
        self.out = nn.Linear(dim, num_labels)
        # fastText's initialisation: small uniform embeddings, so early means stay near zero.
        nn.init.uniform_(self.bag.weight, -1.0 / dim, 1.0 / dim)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(self.bag(ids, offsets))


class ArrayNgram:
    """A trained n-gram student's forward pass in numpy, for serving one request at a time.

    The same probabilities as the torch module (float32 throughout) without torch's fixed cost per call, about
    0.2 ms of the 0.25 ms a served request took: a lookup of the request's rows, their mean, one small matrix
    product. Built from a loaded student (``featurizer``, ``module``, ``labels``) and read-only after that.
    """

    family = "ngram"

    def __init__(self, *, featurizer: HashingFeaturizer, module: NgramClassifier, labels: list[str]):
        self.featurizer, self.labels = featurizer, list(labels)
        self.mode = module.bag.mode
        with torch.no_grad():
            self.embedding = module.bag.weight.detach().cpu().numpy().copy()
            self.weight_t = module.out.weight.detach().cpu().numpy().T.copy()  # (dim, labels)
            self.bias = module.out.bias.detach().cpu().numpy().copy()
        self._ones = np.ones(4096, dtype=np.float32)
        # A mean or a sum of rows commutes with the linear layer: each bucket's label scores, computed once (a
        # smaller table while there are fewer labels than dimensions), and a request sums its rows of those: the
        # same probabilities to float32 rounding, for less work per request than the bag and the product.
        narrower = len(self.labels) < self.embedding.shape[1]
        self.scores = self.embedding @ self.weight_t if self.mode != "max" and narrower else None

    @classmethod
    def of(cls, student) -> ArrayNgram:
        return cls(featurizer=student.featurizer, module=student.module, labels=student.labels)

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
