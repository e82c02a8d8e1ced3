"""The pretrained-teacher benchmark runs the default flow end to end on a few languages and prints every figure;
its Python teacher runs only from the allow-list and answers by the product's contract (timings never asserted)."""

from __future__ import annotations

import re

import pytest
from test_benchmarks_smoke import assert_figures, run_quick

from core.teacher.python import read_answer

pytest.importorskip("lingua", reason="lingua-language-detector (the test extra) is not installed")
from benchmarks.teachers import lingua_teacher  # noqa: E402 (after the skip: it imports lingua)

FIGURE_MB = r"^\s+{label}\s+[\d,]+\.\d+ MB$"


def test_the_benchmark_distils_lingua_through_the_default_flow_and_prints_every_figure():
    out = run_quick("bench_pretrained_teacher.py", timeout=600)
    assert re.search(r"ChatterBot corpus, 4 languages: 160 unique utterances, \d+ to train on, \d+ in the imported "
                     r"test split\. Left out \(lingua does not know them\): hinglish .*, oriya ", out), out
    assert "Holdout fixed from the imported test split" in out
    # By default the training rows go in unlabelled: the student learns from the teacher alone.
    assert "The training rows go in unlabelled" in out
    assert re.search(r"Teacher run #\d+ \(benchmarks\.teachers\.lingua_teacher:identify_low\): \d+ training rows "
                     r"answered in [\d.]+ s; imported without their labels", out), out
    assert re.search(r"Recommended run #\d+: ", out) and "Per language on the holdout" in out
    assert_figures(out, ["teacher accuracy (corpus labels)", "student accuracy (corpus labels)",
                         "teacher accuracy, as the evaluation scored it",
                         "student accuracy, as the evaluation scored it", "accuracy retained (student / teacher)",
                         "teacher accuracy, mean over languages", "student accuracy, mean over languages",
                         "student agreement with the teacher", "teacher single-text p50", "teacher single-text p95",
                         "teacher p95, evaluation (its callable)", "student p95, evaluation",
                         "p95 ratio teacher / student",
                         "memory ratio teacher models / student", "memory ratio teacher process / student process",
                         "teacher run over the training rows", "default search time (all candidates)"])
    for label in ("teacher process RSS, models preloaded", "teacher models: RSS after load - before",
                  "student process RSS, as served", "student: RSS after load - before", "student weights"):
        assert re.search(FIGURE_MB.format(label=re.escape(label)), out, re.MULTILINE), f"no {label!r} in:\n{out}"
    # The student's answers in its own process are the ones the evaluation recorded.
    assert "differ from the evaluation's" not in out
    assert re.search(r"^Goals: student at >= 98% of the teacher's accuracy: (met|NOT met) \([\d.]+%\); >= 3x lower "
                     r"p95: (met|NOT met) .*>= 50x less memory \(the models\): (met|NOT met) .*load average [\d.]+",
                     out, re.MULTILINE), out


def test_the_teacher_answers_by_the_python_teacher_contract_over_its_own_labels():
    texts = ["Where is the train station, please?", "¿Dónde está la estación de tren?", "駅はどこですか", "12345 !!"]
    answers = lingua_teacher.identify_low(texts)
    read = [read_answer(a, row=i + 1, labels=lingua_teacher.LABELS, name="lingua") for i, a in enumerate(answers)]
    assert [p.label for p in read] == ["english", "spanish", "japanese", lingua_teacher.UNKNOWN]
    assert all(p.probs and abs(sum(p.probs) - 1) < 1e-6 for p in read[:3])
    assert read[3].probs is None  # digits: lingua gives every language zero, and no probability is invented
    assert len(lingua_teacher.LABELS) == 76 and len(set(lingua_teacher.LABELS)) == 76
