"""The Ray teacher benchmark runs end to end on a small seed and prints every figure (never asserting a time)."""

from __future__ import annotations

import importlib.util
import re

import pytest
from test_benchmarks_smoke import assert_figures, run_quick


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install -e '.[test]' brings the ray extra)")
def test_ray_teacher_benchmark_measures_both_paths_and_both_worker_counts_with_the_same_answers():
    out = run_quick("bench_teacher_ray.py", timeout=600)
    assert "teacher 4x256, 200 inputs, batch 8" in out and "load average" in out and out.count("after: ") == 1
    assert_figures(out, ["Ray local instance start-up (ray.init)",
                         "Ray, 1 worker: start the workers + load the model (8 inputs)",
                         "Ray, 2 workers: start the workers + load the model (8 inputs)",
                         "ratio Ray, 1 worker end to end / in-process cold",
                         "ratio Ray, 2 workers steady / in-process warm"])
    for label in ("in-process, warm (model loaded)", "Ray, 1 worker: end to end", "Ray, 2 workers: end to end",
                  "Ray, 2 workers: steady, first answer to last"):
        assert re.search(rf"^\s+{re.escape(label)}\s+[\d,]+\.\d inputs/s$", out, re.MULTILINE), (label, out)
    # Both worker counts gave the in-process answers.
    assert out.count("same label as in-process on 100.0% of inputs") == 2, out
