"""A Python teacher answers an imported holdout in the evaluation, as a local teacher does: its answers there are
its own (never copied from training rows), it is timed, and a callable taken off the admin's list is not run."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import teachers_fixture
from data_helpers import csv_bytes
from eval_helpers import FAST, KEYWORDS, easy_gate
from teacher_helpers import make_dataset

from core.access import projects
from core.data import holdout
from core.evaluation import runs as eval_runs
from core.gate import gate
from core.store import jobs
from core.store.config import get_settings
from core.teacher import runs as teacher_runs
from core.training import runs as training_runs

RULES = "teachers_fixture:keyword_rules"  # labels only
SCORED = "teachers_fixture:scored"  # a label and 0.8 / 0.1 / 0.1
MAPPING = {"id": "id", "text": "text", "reference": "reference", "slices": ["queue"]}


def allow(monkeypatch, *names: str) -> None:
    monkeypatch.setenv("STILLROOM_TEACHER_CALLABLES", ",".join(names))
    get_settings.cache_clear()


def held_rows(n: int = 30) -> list[dict]:
    """Test rows written apart from the training tickets (other words, other ids), one keyword each."""
    labels = list(KEYWORDS)
    return [{"id": f"S{i:04d}", "queue": labels[i % 3], "reference": labels[i % 3],
             "text": f"dear desk number {i}, kindly look at the {KEYWORDS[labels[i % 3]][i % 5]} matter"}
            for i in range(n)]


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


def student_of(session, engine, demo, routing, monkeypatch, name: str):
    """A Python teacher run over the training tickets, an imported test split as the holdout (which the run
    never saw), the gate locked and an n-gram student trained: the training run."""
    allow(monkeypatch, name)
    dataset = make_dataset(session, actor=demo["dana"], project=routing)
    job = teacher_runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset.id,
                                 adapter="python", config={"callable": name})
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    imported = holdout.import_holdout(session, actor=demo["dana"], project=routing, mapping=MAPPING,
                                      data=csv_bytes(held_rows()), filename="test.csv")
    assert imported.leakage.leaked == 0
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=routing,
                                            teacher_run_id=done.result["teacher_run"], config=FAST)
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    return run


def evaluate(session, engine, demo, routing, run):
    job = eval_runs.start_evaluation(session, actor=demo["dana"], project=routing, training_run_id=run.id)
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    session.expire_all()
    ev = eval_runs.get_evaluation(session, project=routing, evaluation_id=done.result["evaluation"])
    return eval_runs.load_report(session, ev), eval_runs.load_predictions(session, ev)


def test_a_listed_python_teacher_answers_the_imported_holdout_and_is_timed(session, engine, demo, routing,
                                                                           monkeypatch):
    run = student_of(session, engine, demo, routing, monkeypatch, SCORED)
    report, predictions = evaluate(session, engine, demo, routing, run)
    assert len(predictions) == 30 and predictions["id"].str.startswith("S").all()
    # Its own answers on rows it never labelled before: right on every one, with its own confidence.
    assert (predictions["teacher_label"] == predictions["reference"]).all()
    assert predictions["teacher_confidence"].tolist() == pytest.approx([0.8] * 30)
    assert report.overall["teacher"].accuracy == 1.0
    assert report.latency.teacher.p95_ms > 0  # timed here, as a local teacher is


def test_a_callable_taken_off_the_list_is_not_run_by_the_evaluation_and_a_label_only_one_invents_no_confidence(
        session, engine, demo, routing, monkeypatch):
    run = student_of(session, engine, demo, routing, monkeypatch, RULES)
    allow(monkeypatch, SCORED)  # the admin withdraws keyword_rules after its run
    teachers_fixture.CALLS.clear()
    report, predictions = evaluate(session, engine, demo, routing, run)
    assert teachers_fixture.CALLS == []  # not called: its stored answers stand, and they do not cover the holdout
    assert predictions["teacher_label"].isna().all() and report.latency.teacher.p95_ms is None
    allow(monkeypatch, RULES)  # listed again: it answers the holdout now
    report, predictions = evaluate(session, engine, demo, routing, run)
    assert sum(teachers_fixture.CALLS) > 30  # the holdout's 30 texts, then the latency timing's
    assert (predictions["teacher_label"] == predictions["reference"]).all()
    assert all(math.isnan(c) for c in predictions["teacher_confidence"])  # a label, no probability invented
    assert isinstance(predictions, pd.DataFrame) and report.overall["teacher"].accuracy == 1.0
