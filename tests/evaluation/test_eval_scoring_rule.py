"""One scoring rule: overall and per-slice figures count the same rows, and a missing or unreadable answer (a chat
teacher's unparseable reply, a missing imported row, a label outside the label set) is wrong for whoever gave
it, in both places, with the count of such rows in the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from core.domain.gate_spec import GateSpec
from core.evaluation import report
from core.gate import gate

LABELS = ["billing", "shipping", "legal"]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    truth = rng.choice(LABELS, size=200).astype(object)
    student, teacher = truth.copy(), truth.copy()
    student[:12] = None  # missing rows of an imported file
    student[12:16] = "refund??"  # an answer outside the label set
    student[16:30] = np.where(truth[16:30] == "billing", "shipping", "billing")
    teacher[190:] = None  # the chat teacher's unparseable answers
    return pd.DataFrame({"id": [f"r{i}" for i in range(200)], "text": "x", "reference": truth,
                         "teacher_label": teacher, "student_label": student, "everything": "all",
                         "half": np.where(np.arange(200) < 100, "a", "b").astype(object)})


def _scored(frame):
    spec = GateSpec(**gate.template("cost-pressure"))
    return report.score(frame, spec=spec, slices=["everything", "half"], labels=LABELS, baselines={})


def test_overall_and_slice_figures_count_the_same_rows_and_missing_answers_are_wrong():
    frame = _frame()
    scored = _scored(frame)
    student, teacher = scored.overall["student"], scored.overall["teacher"]
    whole = scored.slices[scored.slices["column"] == "everything"].iloc[0]
    filled = frame["student_label"].fillna("(none)")
    assert student["accuracy"] == pytest.approx(accuracy_score(frame["reference"], filled)) == pytest.approx(0.85)
    assert whole["accuracy"] == pytest.approx(student["accuracy"]) and whole["n_labelled"] == student["n_labelled"]
    assert teacher["accuracy"] == pytest.approx(0.95) == pytest.approx(whole["teacher_accuracy"])
    assert whole["macro_f1"] == pytest.approx(student["macro_f1"])
    assert student["macro_f1"] == pytest.approx(f1_score(frame["reference"], filled, labels=LABELS,
                                                         average="macro"))
    # agreement: a missing student answer disagrees; a row the teacher could not answer is not the student's
    assert student["agreement"] == pytest.approx(whole["agreement"]) == pytest.approx(160 / 190)
    halves = scored.slices[scored.slices["column"] == "half"]
    assert halves["n_labelled"].sum() == student["n_labelled"]
    assert (halves["accuracy"] * halves["n_labelled"]).sum() / 200 == pytest.approx(student["accuracy"])


def test_the_report_counts_unreadable_answers_per_model():
    spec = GateSpec(**gate.template("cost-pressure"))
    body, _ = report.assemble(_scored(_frame()), spec=spec, evaluation={"n": 200}, latency={}, cost={})
    assert body.unreadable == {"student": 16, "teacher": 10}
    assert report.summary(body)["unreadable"] == {"student": 16, "teacher": 10}
