"""The layer-distillation benchmark runs end to end on six topics and prints every figure (never asserting a time)."""

from __future__ import annotations

from test_benchmarks_smoke import assert_figures, run_quick


def test_layer_distillation_benchmark_trains_both_variants_with_the_same_seed_and_prints_the_ratios():
    out = run_quick("bench_distill_layers.py")
    # Both students went through the product's training runs, and each says which losses it used.
    assert "tiny, soft labels alone, seed 1234" in out and "losses: soft labels (T 2, α 0.5) alone" in out
    assert "tiny, + hidden + attention, seed 1234" in out
    assert "hidden states (weight 1; embeddings → embeddings, student layer 1 ← teacher layer 2, projected " \
           "64 → 128 wide) + attention (weight 1; student layer 1 ← teacher layer 2)" in out
    assert_figures(out, ["teacher accuracy", "tiny, soft labels alone: accuracy", "tiny, soft labels alone: agreement",
                         "tiny, + hidden + attention: accuracy / soft alone",
                         "tiny, + hidden + attention: agreement / soft alone",
                         "tiny, + hidden + attention: time / soft alone"])
    assert "Load average" in out
