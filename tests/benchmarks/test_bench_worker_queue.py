"""The worker-queue benchmark claims every job exactly once with two workers, on PostgreSQL and SQLite, beside
procrastinate, and prints its figures (timings never asserted)."""

from __future__ import annotations

import glob
import os
import shutil

import pytest
from test_benchmarks_smoke import assert_figures, run_quick

HAS_POSTGRES = all(shutil.which(n) or glob.glob(f"/usr/lib/postgresql/*/bin/{n}") for n in ("initdb", "pg_ctl"))


@pytest.mark.skipif(not HAS_POSTGRES and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="PostgreSQL server binaries not found: apt-get install postgresql to run this benchmark")
def test_worker_queue_benchmark_claims_every_job_once_and_prints_its_figures():
    out = run_quick("bench_worker_queue.py", timeout=400)
    assert_figures(out, ["Stillroom claim-by-UPDATE, PostgreSQL: wall per claim",
                         "Stillroom claim-by-UPDATE, PostgreSQL: claim p95",
                         "Stillroom, PostgreSQL, finish with its audit event: wall per claim",
                         "procrastinate 3 (fetch_job/finish_job), PostgreSQL: wall per claim",
                         "ratio Stillroom / procrastinate claims/s",
                         "Stillroom claim-by-UPDATE, SQLite (WAL): wall per claim"])
    assert "Worker queue: 200 jobs claimed by 2 worker processes (load average" in out
    assert "works on the embedded SQLite default: Stillroom yes; procrastinate no" in out
