"""The review, decide and record commands: thin shells over core with the usual exit codes."""

from __future__ import annotations

from click.testing import CliRunner
from review_helpers import approve, review_items
from sqlmodel import select

from core.cli import cli
from core.store.models import Decision, ReviewVerdict

MOD = "Comment moderation"


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_fails(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_queue_lists_disagreements_of_a_slice(gated, failing_eval):
    result = run("--as", "val", "review", "queue", MOD, failing_eval.id, "--slice", "category=threat")
    assert result.exit_code == 0, result.output
    assert "disagreements" in result.output and "threat" in result.output
    assert_fails(run("--as", "val", "review", "queue", MOD, failing_eval.id, "--slice", "threat"), 2,
                 "COLUMN=VALUE")


def test_verdict_by_validator_and_refused_to_driver(session, gated, failing_eval):
    ok = run("--as", "val", "review", "verdict", MOD, failing_eval.id, "c0", "--verdict", "teacher-right",
             "--comment", "missed")
    assert ok.exit_code == 0 and "recorded" in ok.output
    assert_fails(run("--as", "dana", "review", "verdict", MOD, failing_eval.id, "c1", "--verdict",
                     "ambiguous"), 3, "dana built evidence")
    assert_fails(run("--as", "val", "review", "verdict", MOD, failing_eval.id, "c0", "--verdict",
                     "ambiguous"), 2, "already recorded")
    assert len(session.exec(select(ReviewVerdict)).all()) == 1


def test_kappa_with_one_validator_says_so(gated, failing_eval):
    result = run("--as", "val", "review", "kappa", failing_eval.id)
    assert result.exit_code == 0 and "fewer than two validators" in result.output
    assert_fails(run("--as", "val", "review", "kappa", 999), 2, "no evaluation #999")


def test_signoff_threshold_and_ship(session, gated, passing_eval):
    assert_fails(run("--as", "val", "review", "signoff", MOD, passing_eval.id, "--approve"), 3, "0 of 5")
    for item in review_items(session, passing_eval, column="category", value="threat", n=5):
        assert run("--as", "val", "review", "verdict", MOD, passing_eval.id, item, "--verdict",
                   "student-right").exit_code == 0
    signed = run("--as", "val", "review", "signoff", MOD, passing_eval.id, "--approve", "--comment", "fine")
    assert signed.exit_code == 0 and passing_eval.report_hash in signed.output
    curve = run("--as", "oscar", "review", "threshold", MOD, passing_eval.id)
    assert curve.exit_code == 0 and "cost per 1k" in curve.output
    assert run("--as", "oscar", "review", "threshold", MOD, passing_eval.id, "--threshold", "0.7").exit_code == 0
    shipped = run("--as", "sam", "decide", MOD, "--decision", "ship", "--evaluation", passing_eval.id,
                  "--rationale", "passes the gate")
    assert shipped.exit_code == 0 and "ship recorded" in shipped.output


def test_ship_of_a_failing_evaluation_exits_3_and_iterate_prints_the_request(session, demo, gated, failing_eval):
    approve(session, demo, gated, failing_eval)
    assert_fails(run("--as", "sam", "decide", MOD, "--decision", "ship", "--evaluation", failing_eval.id,
                     "--rationale", "ship it"), 3, "category=threat (FAIL)")
    assert_fails(run("--as", "sam", "decide", MOD, "--decision", "iterate", "--evaluation", failing_eval.id,
                     "--rationale", " "), 2, "rationale")
    result = run("--as", "sam", "decide", MOD, "--decision", "iterate", "--evaluation", failing_eval.id,
                 "--rationale", "more threats")
    assert result.exit_code == 0 and "data request: category=threat (FAIL)" in result.output
    assert session.exec(select(Decision)).one().round == 1


def test_record_writes_markdown_and_html(tmp_path, gated, failing_eval):
    md, page = tmp_path / "record.md", tmp_path / "record.html"
    assert run("--as", "sam", "record", MOD, "--format", "md", "--out", md).exit_code == 0
    assert run("--as", "sam", "record", MOD, "--format", "html", "--out", page).exit_code == 0
    assert "Audit chain head hash" in md.read_text() and page.read_text().startswith("<!DOCTYPE html>")
    assert run("--as", "sam", "record", MOD, "--format", "pdf").exit_code == 2
