"""The driver's data pages: upload and map a file and see duplicates before dropping them (Import data);
audit coverage against the gate and fix the holdout once (Coverage and holdout)."""

from __future__ import annotations

import json

import pytest
from data_helpers import csv_bytes, import_rows, routing, snapshot, ticket_rows
from pages_helpers import app_as, by_label, frame_with

from core.data import datasets, holdout


@pytest.fixture
def project(session, demo):
    return routing(session)


def test_upload_map_and_import_a_csv(demo, session, project):
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=project.id)
    at.file_uploader[0].upload("tickets.csv", csv_bytes(ticket_rows(60)), "text/csv").run()
    assert "60 rows, 5 columns (csv)" in at.caption[1].value
    assert by_label(at.selectbox, "Id column").value == "ticket_id"  # guessed from the column names
    by_label(at.selectbox, "Input text column").select("body")
    by_label(at.selectbox, "Reference answer (optional)").select("label")
    by_label(at.multiselect, "Slice columns (queue, channel, tier, language…)").select("queue").select("channel")
    by_label(at.button, "Import").click().run()
    assert not at.error, [e.value for e in at.error]
    [ds] = datasets.list_datasets(session, project_id=project.id)
    assert (ds.n_rows, ds.mapping["slices"], ds.mapping["reference"]) == (60, ["queue", "channel"], "label")
    assert any("imported: 60 rows" in s.value for s in at.success)


def test_a_malformed_upload_names_row_column_and_fix_and_stores_nothing(demo, session, project):
    rows = ticket_rows(10)
    rows[3]["body"] = "   "  # (a formula-looking text is data since the importer stopped refusing it)
    before = snapshot(session)
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=project.id)
    at.file_uploader[0].upload("bad.csv", csv_bytes(rows), "text/csv").run()
    by_label(at.selectbox, "Input text column").select("body")
    by_label(at.button, "Import").click().run()
    message = at.error[0].value
    assert "row 4" in message and "body" in message
    assert snapshot(session) == before


def test_duplicates_are_shown_before_anything_is_dropped(demo, session, project):
    rows = ticket_rows(40)
    rows += [{**rows[1], "ticket_id": "DUP1", "body": rows[1]["body"].upper() + "  "}]
    ds = import_rows(session, demo["dana"], rows)
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=project.id)
    by_label(at.button, "Find duplicates").click().run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Exact duplicates"] == "1" and metrics["Rows kept"] == "40"
    examples = frame_with(at, "Dropped id")
    assert examples["Dropped id"].tolist() == ["DUP1"]
    assert len(datasets.list_datasets(session, project_id=project.id)) == 1  # nothing dropped yet
    by_label(at.button, "Drop 1 duplicates").click().run()
    newest = datasets.list_datasets(session, project_id=project.id)[-1]
    assert (newest.parent_id, newest.operation, newest.n_rows) == (ds.id, "dedup", 40)


def test_coverage_compares_with_production_and_checks_the_gate_slices(demo, session, project):
    import_rows(session, demo["dana"], ticket_rows(200))
    import_rows(session, demo["dana"], ticket_rows(100, seed=3), purpose="production", name="log")
    at = app_as(demo["dana"], page="pages/coverage_holdout.py", project_id=project.id)
    assert by_label(at.selectbox, "Against the production log").index == 1  # the latest log by default
    floors = frame_with(at, "Minimum")
    assert "queue=legal_compliance" in floors["Slice"].tolist()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any("Jensen-Shannon distance" in c["layout"]["title"]["text"] for c in charts)


def test_fix_the_holdout_once(demo, session, project):
    import_rows(session, demo["dana"], ticket_rows(100))
    at = app_as(demo["dana"], page="pages/coverage_holdout.py", project_id=project.id)
    by_label(at.button, "Fix the holdout").click().run()
    fixed = holdout.get_holdout(session, project_id=project.id)
    assert fixed.n_rows == 20 and fixed.stratify_by == ["queue"]
    assert any("Holdout fixed: 20 rows" in s.value for s in at.success)
    assert not [b for b in at.button if b.label == "Fix the holdout"]


def test_someone_who_is_not_the_driver_can_look_but_not_import(demo, project):
    at = app_as(demo["admin"], page="pages/import_data.py", project_id=project.id)
    assert "Only a driver" in at.info[0].value
    assert at.file_uploader[0].disabled
