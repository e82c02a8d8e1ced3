"""The n-gram student family: hashed word and character n-grams into an EmbeddingBag.

For the tightest latency budgets: featurising is plain Python over a per-word
cache and the model is one EmbeddingBag and a linear layer, so a single request
costs a fraction of a millisecond.
"""

from __future__ import annotations

import re
import zlib

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
