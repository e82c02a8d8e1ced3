"""The CLI start-up benchmark runs end to end in its quick mode and prints every figure (never asserted)."""

from __future__ import annotations

from test_benchmarks_smoke import assert_figures, run_quick


def test_cli_start_benchmark_times_each_command_beside_its_floors():
    out = run_quick("bench_cli_start.py")
    assert_figures(out, ["floor: python -c pass", "floor: python -c 'import click'", "stillroom --help",
                         "stillroom audit --help", "stillroom jobs list --help",
                         "floor: import core.store.db + init_db", "stillroom --as ada whoami",
                         "stillroom audit verify --no-files"])
    assert "load average (1, 5, 15 min): before" in out
