"""The teacher-directory benchmark runs end to end in its quick mode and prints every figure (never asserted)."""

from __future__ import annotations

from test_benchmarks_smoke import assert_figures, run_quick


def test_teacher_dir_benchmark_prints_each_step_beside_its_floor():
    out = run_quick("bench_teacher_dir.py")
    assert_figures(out, ["floor: read every file", "manifest at submit (every file hashed)", "ratio manifest / read",
                         "floor: shutil.copytree", "copy to the store under the files' hashes",
                         "ratio store copy / copytree", "the same directory again (stored once)",
                         "floor: copytree + hash every file", "host B: fetch into its cache, every file checked",
                         "ratio fetch / floor", "host B: cached copy checked again (each later job)"])
    assert "load average (1, 5, 15 min): before" in out
