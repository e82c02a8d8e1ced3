"""The per-slice report benchmark runs end to end on a small seed and prints its figures, the floor, the ratio, the
budget and the load (times never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_slice_report_benchmark_prints_its_time_the_floor_the_ratio_budget_and_load():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_slice_report.py"), "--quick"],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    for label in ("slice_report (bincount)", "floor (factorize + bincount)", "ratio ours / floor",
                  "fairlearn MetricFrame", "ratio fairlearn / ours"):
        assert re.search(rf"^\s+{re.escape(label)}\s+[\d,]+\.\d+(?: ms|x)\b", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"slice_report \(bincount\)\s+[\d,.]+ ms\s+\(budget 200 ms\)", done.stdout), done.stdout
    assert re.search(r"ratio ours / floor\s+[\d,.]+x\s+\(budget <= 3x\)", done.stdout), done.stdout
    assert "the two reports agree" in done.stdout and "load average" in done.stdout
