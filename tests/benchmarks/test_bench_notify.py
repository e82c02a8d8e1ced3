"""The notifications benchmark runs end to end on a small seed and prints every figure (never asserting a time)."""

from __future__ import annotations

from test_benchmarks_smoke import assert_figures, run_quick


def test_notify_benchmark_tells_every_validator_posts_every_try_and_prints_its_figures():
    out = run_quick("bench_notify.py")
    assert "20 events telling 8 validators each, 20 webhook tries" in out
    assert_figures(out, ["event with its audit record, no notify", "the same event with notify()",
                         "ratio with / without notify", "webhook try through deliver_due",
                         "bare httpx.post of the same body", "ratio deliver_due / bare post"])
