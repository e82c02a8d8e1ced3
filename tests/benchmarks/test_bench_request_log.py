"""The request-log benchmark runs end to end on a small seed and prints every figure (timings never asserted)."""

from __future__ import annotations

from test_benchmarks_smoke import assert_figures, run_quick


def test_request_log_benchmark_reads_back_every_workers_record_and_prints_its_figures():
    out = run_quick("bench_request_log.py")
    assert_figures(out, ["floor (json.dumps + one os.write)", "RequestLog.write (file per process)",
                         "ratio RequestLog / floor", "ratio before / RequestLog", "read_log of their union"])
    assert "read back: 5,000 of 5,000 records, 0 torn lines" in out
