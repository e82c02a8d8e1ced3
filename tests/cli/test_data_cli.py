"""`stillroom data ...`: a thin shell over core.data, with its errors as exit codes."""

from __future__ import annotations

from click.testing import CliRunner
from data_helpers import csv_bytes, routing, snapshot, ticket_rows, write

from core.cli import cli
from core.data import datasets
from core.store.models import Dataset


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_fails(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _import(tmp_path, rows, *extra: str):
    path = write(tmp_path, "tickets.csv", csv_bytes(rows))
    return run("--as", "dana", "data", "import", "Support ticket routing", str(path), "--id", "ticket_id",
               "--text", "body", "--slice", "queue", "--slice", "channel", "--reference", "label",
               "--labels", "billing,refund,shipping,legal_compliance", *extra)


def test_import_list_and_preview(engine, demo, session, tmp_path):
    result = _import(tmp_path, ticket_rows(50), "--name", "march")
    assert result.exit_code == 0, result.output
    assert "Imported dataset #1 'march' (prompts): 50 rows." in result.stdout
    ds = session.get(Dataset, 1)
    assert ds.mapping["slices"] == ["queue", "channel"] and ds.mapping["labels"][0] == "billing"
    listed = run("--as", "val", "data", "list", "Support ticket routing")
    assert listed.exit_code == 0 and "march" in listed.stdout and "import" in listed.stdout
    shown = run("data", "preview", str(tmp_path / "tickets.csv"), "--rows", "2")
    assert shown.exit_code == 0 and "csv: 50 rows; columns: ticket_id, body" in shown.stdout


def test_malformed_file_exits_2_and_stores_nothing(engine, demo, session, tmp_path):
    rows = ticket_rows(10)
    rows[4]["body"] = "   "
    before = snapshot(session)
    assert_fails(_import(tmp_path, rows), 2, "row 5, column body:", "holds only spaces")
    assert snapshot(session) == before


def test_non_driver_import_exits_3(engine, demo, tmp_path):
    path = write(tmp_path, "t.csv", csv_bytes(ticket_rows(5)))
    assert_fails(run("--as", "val", "data", "import", "Support ticket routing", str(path), "--id", "ticket_id",
                     "--text", "body"), 3, "Only a driver")


def test_dedup_reports_then_applies(engine, demo, session, tmp_path):
    rows = ticket_rows(30)
    rows.append({**rows[2], "ticket_id": "COPY", "body": rows[2]["body"].upper()})
    assert _import(tmp_path, rows).exit_code == 0
    report = run("--as", "dana", "data", "dedup", "Support ticket routing", "1")
    assert report.exit_code == 0, report.output
    assert "31 rows: 1 exact and 0 near duplicates" in report.stdout and "--apply" in report.stdout
    assert len(datasets.list_datasets(session, project_id=routing(session).id)) == 1
    applied = run("--as", "dana", "data", "dedup", "Support ticket routing", "1", "--apply")
    assert applied.exit_code == 0 and "Stored dataset #2" in applied.stdout
    assert_fails(run("--as", "dana", "data", "dedup", "Support ticket routing", "2", "--apply"), 2,
                 "has no duplicates")
    assert_fails(run("--as", "dana", "data", "dedup", "Support ticket routing", "9"), 2, "no dataset #9")


def test_holdout_coverage_oversample_and_leakage(engine, demo, tmp_path):
    assert _import(tmp_path, ticket_rows(300)).exit_code == 0
    fixed = run("--as", "dana", "data", "holdout", "Support ticket routing", "1", "--fraction", "0.2",
                "--stratify", "queue")
    assert fixed.exit_code == 0, fixed.output
    assert "Fixed the holdout" in fixed.stdout and "60 rows" in fixed.stdout
    assert_fails(run("--as", "dana", "data", "holdout", "Support ticket routing", "1", "--fraction", "0.2"), 3,
                 "already has its holdout")
    cov = run("--as", "sam", "data", "coverage", "Support ticket routing", "1")
    assert cov.exit_code == 0, cov.output
    assert "queue=legal_compliance" in cov.stdout and "Oversampling offered:" in cov.stdout
    assert "Missing: the gate's slice tier=enterprise cannot be checked" in cov.stdout
    over = run("--as", "dana", "data", "oversample", "Support ticket routing", "1")
    assert over.exit_code == 0, over.output
    assert "queue=legal_compliance:" in over.stdout and "Stored dataset #2" in over.stdout
    leak = run("--as", "dana", "data", "leakage", "Support ticket routing", "2")
    assert leak.exit_code == 0 and "No overlap" in leak.stdout


def test_bad_holdout_fraction_exits_2(engine, demo, tmp_path):
    assert _import(tmp_path, ticket_rows(20)).exit_code == 0
    assert_fails(run("--as", "dana", "data", "holdout", "Support ticket routing", "1", "--fraction", "0.9"), 2,
                 "outside 0 to 0.5")
