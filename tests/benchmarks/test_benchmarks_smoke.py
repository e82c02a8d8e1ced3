"""The benchmarks run end to end on a small seed and print every figure (timings are never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
# A figure line: the label, then a time in ms or a ratio.
FIGURE = r"^\s+{label}\s+[\d,]+\.\d+(?: ms|x)\b"


def run_quick(script: str, *, timeout: int = 240) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def assert_figures(out: str, labels: list[str]) -> None:
    for label in labels:
        pattern = FIGURE.format(label=re.escape(label))
        assert re.search(pattern, out, re.MULTILINE), f"no figure for {label!r} in:\n{out}"


def test_audit_verify_benchmark_checks_a_seeded_chain_and_prints_its_figures():
    out = run_quick("bench_audit_verify.py")
    assert_figures(out, ["verify(engine)", "naive ORM load + rehash", "ratio naive / verify",
                         "CLI `stillroom audit verify`", "CLI start-up (audit --help)",
                         "floor: read rows, hash each payload", "ratio verify / floor", "verify(engine) under the key",
                         "verify_since, 101 events after", "CLI `audit verify --since last`"])
    assert "CLI --since said: Audit chain intact since verify checkpoint #1 " in out and "load average" in out
    # The bulk-seeded chain is one that Stillroom's own CLI accepts.
    assert "CLI said: Audit chain intact: 5000 events verified" in out


@pytest.mark.skipif(not (REPO / "pages" / "portfolio.py").exists(), reason="pages/portfolio.py is not written yet")
def test_portfolio_benchmark_renders_the_page_and_prints_its_figures():
    out = run_quick("bench_portfolio.py")
    assert_figures(out, ["page script run (AppTest)", "page script run, slowest", "portfolio() alone",
                         "naive N+1 queries", "ratio naive / portfolio()", "ratio page / portfolio()",
                         "vouching checks, per page run", "vouching checks in portfolio()"])
    assert re.search(r"page script run \(AppTest\)\s+[\d,.]+ ms\s+< 300 ms", out)
    assert re.search(r"vouching checks in portfolio\(\)\s+[\d,.]+ ms\s+[1-9]\d* checks, \d+% of it", out), out
    assert "load average" in out


@pytest.mark.skipif(not (REPO / "pages" / "review.py").exists(), reason="pages/review.py is not written yet")
def test_review_page_benchmark_renders_the_page_and_prints_its_figures():
    out = run_quick("bench_review_page.py")
    assert_figures(out, ["page script run (AppTest)", "page script run, slowest", "load predictions (hash + Parquet)",
                         "disagreement_queue() alone", "evaluation_curve() alone", "review_coverage() alone",
                         "naive queue (itertuples + sorted)", "ratio naive / disagreement_queue()",
                         "ratio page / load predictions", "vouching checks, per page run"])
    assert re.search(r"page script run \(AppTest\)\s+[\d,.]+ ms\s+< 1,000 ms", out)
    assert re.search(r"vouching checks, per page run\s+[\d,.]+ ms\s+[1-9]\d* checks, \d+% of it", out), out
    assert "load average" in out


def test_serve_benchmark_drives_the_real_service_and_prints_its_figures():
    out = run_quick("bench_serve.py")
    for label in ("student at stage 100", "teacher-only (stage shadow)"):  # req/s, four latencies, server CPU
        assert re.search(rf"^{re.escape(label)}\s+[\d,]+\.\d(\s+[\d.]+ms){{4}}\s+[\d.]+$", out, re.MULTILINE), out
    assert re.search(r"ratio student / teacher-only req/s\s+[\d.]+x", out), out


@pytest.mark.timeout(600)  # a tiny teacher, an encoder pre-trained here and four candidates on shared cores
def test_real_data_benchmark_runs_the_default_flow_on_the_shipped_corpus_and_prints_its_figures():
    out = run_quick("bench_real_data.py", timeout=540)
    assert "in the imported test split" in out and "Holdout fixed from the imported test split" in out
    assert "Recommended run #" in out
    # issue 20: from scratch, pre-trained here and a pretrained encoder, same size, same run, with ratios
    assert "Encoder given as --student-init: BERT tiny MLM-pre-trained here on" in out
    for start in ("from scratch", "pre-trained here", "pretrained encoder"):
        assert re.search(rf"^  {start}\s+run #\d+: val accuracy [\d.]+, agreement [\d.]+, test accuracy [\d.]+",
                         out, re.MULTILINE), out
    assert re.search(r"pre-trained here\s+run #\d+: .*; x[\d.]+ val, x[\d.]+ test$", out, re.MULTILINE), out
    assert "Load average (1, 5, 15 min): " in out
    assert_figures(out, ["teacher accuracy", "student accuracy (recommended run)",
                         "accuracy retained (student / teacher)", "teacher single-request p95",
                         "student single-request p95", "p95 ratio teacher / student", "teacher training time",
                         "default search time (all candidates)"])


@pytest.mark.timeout(960)  # a 4x256 teacher and two students trained on two shared cores
def test_demo_students_benchmark_times_eager_and_lean_and_checks_lean_answers_against_eager():
    out = run_quick("bench_demo_students.py", timeout=900)
    for runtime in ("eager", "onnx", "torchscript"):  # params, accuracy, ratio, ex/s, x, p50, p95, two ratios
        assert re.search(rf"^transformer-tiny\s+{runtime}\s+[\d,]+\s+[\d.]+\s+[\d.]+\s+[\d,]+\s+[\d.]+x"
                         rf"\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+[\d.]+x$", out, re.MULTILINE), out
    for runtime in ("onnx", "torchscript"):
        assert re.search(rf"transformer-tiny {runtime}: .* same label on 100\.00%.*\(equal within", out), out
    assert re.search(r"^teacher single-request p95 [\d.]+ ms", out, re.MULTILINE), out
    assert re.search(r"fastest lean runtime for transformer-tiny: (onnx|torchscript) \([\d.]+x lower p95", out), out
    assert out.count("load average at") == 2
