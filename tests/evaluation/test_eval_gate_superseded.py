"""Whether an evaluation's gate was superseded is computed when shown, never baked into its hashed report: a report
written under gate v2 says nothing about later versions, and stays intact when v3 is locked."""

from __future__ import annotations

import pandas as pd
from eval_helpers import easy_gate, teacher_run_with_holdout

from core.access import projects
from core.data.holdout import holdout_rows
from core.decision import decision
from core.evaluation import imports, runs
from core.gate import gate


def test_superseded_is_computed_when_shown_not_stored(session, demo, tmp_path):
    routing = projects.get_project(session, "Support ticket routing")
    teacher_run_with_holdout(session, actor=demo["dana"], project=routing, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    held = holdout_rows(session, project_id=routing.id)
    path = tmp_path / "preds.csv"
    pd.DataFrame({"id": held["id"], "student": held["queue"], "teacher": held["queue"]}).to_csv(path, index=False)
    ev = imports.import_predictions(session, actor=demo["dana"], project=routing, path=path, kind="label")
    report = runs.load_report(session, ev)
    assert "gate_superseded" not in report.evaluation.model_dump() and not runs.is_superseded(session, ev)

    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(cost_per_1k=0.5), reason="cheaper")
    assert runs.is_superseded(session, ev)
    assert runs.load_report(session, ev) == report  # the hashed report is unchanged and still verifies
    assert any("superseded by version" in b for b in decision.ship_blockers(
        session, project=routing, evaluation=ev, report=report))
