"""The driver's Evaluate page: an evaluation starts as a job; its criteria, overall chart and slices appear."""

from __future__ import annotations

import json

import pytest
from eval_helpers import easy_gate, teacher_run_with_holdout, trained_student
from pages_helpers import app_as, by_label, frame_with
from test_pages_driver import wait_for

from core.access import projects
from core.evaluation import runs
from core.gate import gate
from core.store import jobs


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


def test_evaluate_a_trained_student_and_read_the_report(session, engine, demo, routing, tmp_path):
    teacher_run = teacher_run_with_holdout(session, actor=demo["dana"], project=routing, tmp_path=tmp_path)
    student = trained_student(session, engine, actor=demo["dana"], project=routing, teacher_run=teacher_run)
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    at = app_as(demo["dana"], page="pages/evaluate.py", project_id=routing.id)
    assert "No evaluation yet." in at.info[-1].value
    assert by_label(at.selectbox, "Training run").value == student.id
    by_label(at.button, "Start evaluation").click().run()
    assert not at.error, [e.value for e in at.error]
    [job] = [j for j in jobs.list_jobs(session, project_id=routing.id) if j.kind == "evaluate"]
    assert wait_for(engine, job.id).status == "done"
    at = app_as(demo["dana"], page="pages/evaluate.py", project_id=routing.id)
    [ev] = runs.list_evaluations(session, project_id=routing.id)
    criteria = frame_with(at, "detail")
    assert set(criteria["status"]) <= {"PASS", "FAIL", "INSUFFICIENT DATA"} and len(criteria) >= 4
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in chart["data"]} >= {"student", "teacher", "majority"}
    assert "queue=billing" in frame_with(at, "Slice")["Slice"].tolist()
    assert ev.report_hash[:12] in (at.success or at.error)[0].value


def test_a_sponsor_reads_evaluations_but_cannot_start_one(demo, routing):
    at = app_as(demo["admin"], page="pages/evaluate.py", project_id=routing.id)
    assert "Only a driver" in at.info[0].value
    assert by_label(at.button, "Start evaluation").disabled
