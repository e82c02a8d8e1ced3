"""Batches of similar lengths (core.ml.loop.length_batches): every row once an epoch, in a seeded order, with far
less padding than random batches of the same rows."""

from __future__ import annotations

import numpy as np

from core.ml import loop


def padded(batches: list[np.ndarray], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_every_row_once_in_as_many_batches_as_before_with_far_less_padding():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.choice([5, 8, 12, 20, 64, 128], size=1000, p=[.3, .25, .2, .15, .07, .03])]
    encoded = [[0] * n for n in lengths]
    order = rng.permutation(1000)
    batches = loop.length_batches(order, encoded, 32, np.random.default_rng(7))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert len(batches) == -(-1000 // 32) and all(len(b) <= 32 for b in batches)
    plain = [order[b:b + 32] for b in range(0, 1000, 32)]  # the old cut: consecutive rows of the shuffled order
    assert padded(batches, lengths) < 0.5 * padded(plain, lengths)
    # Seeded: the same epoch gives the same batches (a resumed run sees the order it would have).
    again = loop.length_batches(order, encoded, 32, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    # Still shuffled: the batches do not come shortest first.
    assert [max(lengths[i] for i in b) for b in batches] != sorted(max(lengths[i] for i in b) for b in batches)
