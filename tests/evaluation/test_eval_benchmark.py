"""The per-slice report benchmark runs end to end on a small seed and prints its figures (times never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_slice_report_benchmark_prints_both_timings_and_their_ratio():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_slice_report.py"), "--quick"],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    for label in ("slice_report (bincount)", "fairlearn MetricFrame", "ratio fairlearn / ours"):
        assert re.search(rf"^\s+{re.escape(label)}\s+[\d,]+\.\d+(?: ms|x)\b", done.stdout, re.MULTILINE), done.stdout
    assert "the two reports agree" in done.stdout
