"""`stillroom eval`: start an evaluation with a progress bar, import predictions, list them, show the gate check."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from eval_helpers import easy_gate, teacher_run_with_holdout, trained_student

from core.access import projects
from core.cli import cli
from core.data.holdout import holdout_rows
from core.gate import gate


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


@pytest.fixture
def teacher_run(session, demo, routing, tmp_path):
    return teacher_run_with_holdout(session, actor=demo["dana"], project=routing, tmp_path=tmp_path)


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["--as", "dana", *args])


def test_eval_start_runs_the_job_and_show_prints_every_criterion(session, engine, demo, routing, teacher_run):
    run = trained_student(session, engine, actor=demo["dana"], project=routing, teacher_run=teacher_run)
    result = _invoke("eval", "start", routing.name, "--run", str(run.id))
    assert result.exit_code == 0, result.output
    assert "Evaluation #1 did NOT pass the gate" in result.output  # the demo gate's slices are not in this holdout
    shown = _invoke("eval", "show", "1")
    assert shown.exit_code == 0, shown.output
    assert "INSUFFICIENT DATA  slice queue=legal_compliance: accuracy" in shown.output
    assert "PASS" in shown.output and "quality floor: accuracy" in shown.output


def test_eval_import_list_and_show(session, demo, routing, teacher_run, tmp_path):
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    held = holdout_rows(session, project_id=routing.id)
    path = tmp_path / "preds.csv"
    pd.DataFrame({"id": held["id"], "student": held["queue"], "teacher": held["queue"]}).to_csv(path, index=False)
    result = _invoke("eval", "import", routing.name, str(path), "--kind", "label")
    assert result.exit_code == 0, result.output
    assert "Evaluation #1 of imported label predictions did NOT pass the gate" in result.output
    listed = _invoke("eval", "list", routing.name)
    assert listed.exit_code == 0 and "imported" in listed.output and "v2" in listed.output
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(cost_per_1k=3.0), reason="new costs")
    assert "v2 (superseded)" in _invoke("eval", "list", routing.name).output
    shown = _invoke("eval", "show", "1")
    assert shown.exit_code == 0 and "SUPERSEDED" in shown.output
    assert "INSUFFICIENT DATA  p95 latency" in shown.output


def test_eval_import_of_a_bad_file_exits_2_naming_row_and_column(session, demo, routing, teacher_run, tmp_path):
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    path = tmp_path / "preds.csv"
    pd.DataFrame({"id": ["nope"], "student": ["billing"], "teacher": ["billing"]}).to_csv(path, index=False)
    result = _invoke("eval", "import", routing.name, str(path))
    assert result.exit_code == 2
    assert "has 1 ids that are not in the project's holdout ('nope'; the first at row 1)" in result.stderr


def test_eval_start_without_a_locked_gate_exits_3(engine, demo):
    result = _invoke("eval", "start", "Comment moderation", "--run", "1")
    assert result.exit_code == 3 and "not locked" in result.stderr
