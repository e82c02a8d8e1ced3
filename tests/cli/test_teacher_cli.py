"""`stillroom teacher`: run (local, http, file), combine, runs, show, filter, dropped; exit codes and sentences."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlmodel import func, select
from teacher_helpers import FakeChatServer, make_dataset, routing, save_tiny_classifier, ticket_rows

from core.cli import cli
from core.store.models import Job, TeacherFilter, TeacherRun

PROJECT = "Support ticket routing"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture
def dataset(session, demo):
    return make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(12))


def run(*args: str, who: str = "dana", env: dict | None = None):
    return CliRunner().invoke(cli, ["--as", who, *args], env=env)


def count(session, model) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_run_local_shows_a_bar_and_reports_the_run(session, dataset, model_dir):
    result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--model-dir", str(model_dir))
    assert result.exit_code == 0, result.output
    assert "job #1 done." in result.output and "teacher (local)" in result.stderr
    assert "Teacher run #1 (local): 12 rows, 0 unparseable" in result.output
    listing = run("teacher", "runs", PROJECT, who="val")
    assert listing.exit_code == 0 and "local" in listing.output.splitlines()[1]
    shown = run("teacher", "show", "1", who="sam")
    assert shown.exit_code == 0 and "CONFIDENCE" in shown.output and "billing" in shown.output
    assert "model_files=4 files, " in shown.output and "MiB, model_sha256=" in shown.output  # counted, not listed


def test_run_by_someone_other_than_the_driver_exits_3(session, dataset, model_dir):
    result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--model-dir", str(model_dir), who="val")
    assert result.exit_code == 3 and result.stderr.startswith("error: Only a driver")
    assert count(session, Job) == 0


def test_run_local_without_model_dir_exits_2(session, dataset):
    result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id))
    assert result.exit_code == 2 and "needs --model-dir" in result.stderr


def test_http_dry_run_prints_the_estimate_and_sends_nothing(session, dataset):
    with FakeChatServer() as server:
        result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--adapter", "http", "--base-url",
                     server.base_url, "--model", "m", "--price-in", "2", "--max-cost", "5", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run, nothing sent: 12 rows: 0 answered before" in result.output and "12 calls" in result.output
    assert server.calls == 0 and count(session, Job) == 0


def test_http_run_reads_the_key_from_the_named_variable(session, dataset, monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_KEY_VARS", "STILLROOM_TEACHER_API_KEY,MY_TEACHER_KEY")  # the admin's list
    with FakeChatServer() as server:
        result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--adapter", "http", "--base-url",
                     server.base_url, "--model", "m", "--api-key-env", "MY_TEACHER_KEY", "--concurrency", "2",
                     env={"MY_TEACHER_KEY": "k-123"})
    assert result.exit_code == 0, result.output
    assert "Teacher run #1 (http): 12 rows, 0 unparseable" in result.output
    assert server.auth_headers == {"Bearer k-123"} and server.calls == 12
    session.expire_all()
    assert session.get(TeacherRun, 1).config["api_key_env"] == "MY_TEACHER_KEY"


def test_file_combine_filter_and_dropped(session, dataset, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,label,confidence\nT0000,billing,0.9\nT0001,billing,0.95\nT0002,account,0.3\n", "utf-8")
    b.write_text("id,label,confidence\nT0000,billing,0.8\nT0001,technical,0.6\nT0002,account,0.9\n", "utf-8")
    for path in (a, b):
        result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--adapter", "file", "--file", str(path))
        assert result.exit_code == 0, result.output
    combined = run("teacher", "combine", PROJECT, "1,2", "--method", "mean")
    assert combined.exit_code == 0 and "Teacher run #3 (ensemble): 3 rows" in combined.output
    filtered = run("teacher", "filter", PROJECT, "1", "--min-confidence", "0.8", "--drop-reference-disagreement")
    assert filtered.exit_code == 0, filtered.output
    assert "Filter #1 of teacher run #1: kept 1 of 3, dropped 2." in filtered.output
    dropped = run("teacher", "dropped", "1", who="val")
    assert dropped.exit_code == 0 and "Filter #1 dropped 2 rows." in dropped.output
    assert "reference-disagrees" in dropped.output and "below-confidence" in dropped.output
    assert count(session, TeacherFilter) == 1


def test_a_bad_file_exits_2_with_the_row_and_column(session, dataset, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nT0000,refunds\n", "utf-8")
    result = run("teacher", "run", PROJECT, "--dataset", str(dataset.id), "--adapter", "file", "--file", str(bad))
    assert result.exit_code == 2 and "row 1, column label: 'refunds'" in result.stderr
    assert count(session, TeacherRun) == 0


def test_filter_with_a_bad_threshold_exits_2(session, dataset):
    result = run("teacher", "filter", PROJECT, "1", "--min-confidence", "80")
    assert result.exit_code == 2 and "between 0 and 1" in result.stderr
