"""The n-gram student as the event loop answers one request: each word's label scores summed once and kept.

An n-gram student (core.ml.ngram_array.ArrayNgram) answers a text with the mean (or sum) of its ids' rows in the
label-score table. A word's own ids (the word and its character n-grams, from the student's featuriser) always sum
to the same row, so ``InlineNgram`` keeps that sum per word and a request adds a few rows in Python: one per word
and one table row per pair of words, where ``predict_proba`` gathers some sixty rows through a dozen numpy calls.
Under load those calls were half of a served request's CPU.

The probabilities are ``predict_proba``'s to float32 rounding (summed in another order, in double precision). A
student this cannot answer for (max pooling, no label-score table, a featuriser version it does not know) keeps its
own ``predict_proba``, and so does one whose answers on the probe texts differ when it is built.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.ml.ngram_array import FEATURIZER_VERSION, WORD, ArrayNgram, HashingFeaturizer, pair_bucket

KNOWN_FEATURIZER = 1  # the featuriser whose ids ``InlineNgram`` sums: words, their n-grams, word pairs
PROBES = ("", "a", "please refund the invoice today", "the app crash again since monday 12345",
          "Ünïcödé STRASSE straße café-naïve", "x " * 40, "reset reset reset my password login")
TOLERANCE = 1e-5  # what the serving tests allow between the served n-gram and its torch module


class InlineNgram:
    """``answer(text)`` -> (label index, confidence), and ``probabilities(text)``, for one text at a time."""

    def __init__(self, student: ArrayNgram, *, cache_size: int = 100_000):
        self.student, self.cache_size = student, cache_size
        own = student.featurizer
        # The student's featuriser without its cache: the words' sums kept here make its ids a second copy of
        # every word, and a cache that only grows is work for the garbage collector on every word not seen yet.
        self.featurizer = HashingFeaturizer(own.buckets, char_ngrams=own.char_ngrams, cache_size=1)
        self.buckets = own.buckets
        self.table = student.scores  # (buckets, labels) float32: each bucket's label scores
        self.bias = tuple(float(b) for b in student.bias)
        self.mean = student.mode == "mean"
        # Tuples of numbers only, which the collector stops tracking: word -> (its hash, its rows' sum, its ids),
        # a word pair's bucket -> its row.
        self._words: dict[str, tuple[int, tuple[float, ...], int]] = {}
        self._pairs: dict[int, tuple[float, ...]] = {}

    @classmethod
    def of(cls, student: Any) -> InlineNgram | None:
        """The inline scorer for a served student, or None where its own ``predict_proba`` must answer."""
        if not isinstance(student, ArrayNgram) or student.scores is None or student.mode not in ("mean", "sum"):
            return None
        if FEATURIZER_VERSION != KNOWN_FEATURIZER:
            return None
        inline = cls(student)
        return inline if inline.agrees(PROBES) else None

    def agrees(self, texts: tuple[str, ...]) -> bool:
        """Whether every text gets the student's own probabilities (within TOLERANCE) and label."""
        own = self.student.predict_proba(list(texts))
        for text, row in zip(texts, own, strict=True):
            probs = self.probabilities(text)
            if not np.allclose(probs, row, atol=TOLERANCE, rtol=0) or int(np.argmax(probs)) != int(row.argmax()):
                return False
        return True

    def _word(self, word: str) -> tuple[int, tuple[float, ...], int]:
        h, ids = self.featurizer._word(word)  # the featuriser's own ids for the word
        total = tuple(self.table.take(ids, axis=0).sum(axis=0, dtype=np.float64).tolist())
        if len(self._words) >= self.cache_size:
            self._words.clear()
        hit = self._words[word] = (h, total, len(ids))
        return hit

    def _pair(self, bucket: int) -> tuple[float, ...]:
        if len(self._pairs) >= self.cache_size:
            self._pairs.clear()
        row = self._pairs[bucket] = tuple(self.table[bucket].tolist())
        return row

    def _logits(self, text: str) -> list[float]:
        words, pairs, buckets = self._words, self._pairs, self.buckets
        rows: list[tuple[float, ...]] = []
        n, prev = 0, None
        for word in WORD.findall(text.lower()):
            h, total, k = words.get(word) or self._word(word)
            rows.append(total)
            n += k
            if prev is not None:
                bucket = pair_bucket(prev, h, buckets)
                rows.append(pairs.get(bucket) or self._pair(bucket))
                n += 1
            prev = h
        if not rows:
            return list(self.bias)  # an empty bag is zeros
        columns = zip(*rows, strict=True)  # one per label
        if self.mean:
            return [sum(column) / n + b for column, b in zip(columns, self.bias, strict=True)]
        return [sum(column) + b for column, b in zip(columns, self.bias, strict=True)]

    def probabilities(self, text: str) -> list[float]:
        logits = self._logits(text)
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        whole = sum(exps)
        return [e / whole for e in exps]

    def answer(self, text: str) -> tuple[int, float]:
        """The index of the student's label for ``text`` (the first of equals, as numpy's argmax) and its
        probability."""
        logits = self._logits(text)
        top = max(logits)
        return logits.index(top), 1.0 / sum([math.exp(x - top) for x in logits])  # the top's own term is 1
