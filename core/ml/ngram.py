"""The n-gram student family: hashed word and character n-grams into an EmbeddingBag.

For the tightest latency budgets: featurising is plain Python over a per-word
cache and the model is one EmbeddingBag and a linear layer, so a single request
costs a fraction of a millisecond. The featuriser and the numpy forward pass that serves a trained student live
in core.ml.ngram_array (no torch); this module is the torch module that trains.
"""

from __future__ import annotations

import torch
from torch import nn

from core.ml.ngram_array import FEATURIZER_VERSION, ArrayNgram, HashingFeaturizer, featurizer_of

__all__ = ["FEATURIZER_VERSION", "ArrayNgram", "HashingFeaturizer", "NgramClassifier", "featurizer_of"]


class NgramClassifier(nn.Module):
    def __init__(self, *, buckets: int, dim: int, num_labels: int, mode: str = "mean"):
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode=mode)
        self.out = nn.Linear(dim, num_labels)
        # fastText's initialisation: small uniform embeddings, so early means stay near zero.
        nn.init.uniform_(self.bag.weight, -1.0 / dim, 1.0 / dim)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(self.bag(ids, offsets))
