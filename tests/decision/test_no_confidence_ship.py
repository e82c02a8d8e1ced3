"""A student whose predictions carry no confidence (the shape of examples/byo/text.csv): the import says what that
means, the operator may choose "serve every answer" (threshold 0, no fallback) explicitly, attributed and audited,
and without that choice the ship refusal names the missing confidence as the cause."""

from __future__ import annotations

import pytest
from byo_helpers import (
    exported,
    new_project,
    ok,
    predictions,
    run,
    tickets,
    triage_gate,
)
from sqlmodel import Session, select

from core.store import db
from core.store.models import AuditEvent, ThresholdProposal, User

pytestmark = pytest.mark.usefixtures("people")
NAME = "Blind"


@pytest.fixture
def imported(tmp_path, request) -> str:
    """A passing student's predictions without a confidence column, imported as evaluation #1; its output."""
    model_dir = request.getfixturevalue("saved_student")
    rows = tickets()
    new_project(tmp_path, NAME, rows, triage_gate())
    path = tmp_path / "preds.csv"
    predictions(exported(tmp_path, NAME), rows).drop(columns="confidence").to_csv(path, index=False)
    return ok("eval", "import", NAME, str(path), "--latency-model-dir", str(model_dir))


@pytest.fixture
def operator() -> str:
    ok("users", "add", "op", "--display-name", "Op", "--password-stdin", who="root", input="op-password-1\n")
    ok("roles", "assign", NAME, "op", "operator", who="root")
    return "op"


def _approve() -> None:
    ok("review", "signoff", NAME, "1", "--approve", "--comment", "checked", who="val")


def _ship():
    return run("decide", NAME, "--decision", "ship", "--evaluation", "1", "--rationale", "passes", who="spon")


def test_the_import_says_what_a_missing_confidence_means(imported):
    assert "PASSED the gate" in imported
    assert "No confidence: the student's 120 answers carry no confidence" in imported
    assert "every answer falls back to the teacher" in imported and "--serve-every-answer" in imported


def test_without_the_choice_ship_is_refused_naming_the_missing_confidence(imported):
    ok("review", "threshold", NAME, "1", "--threshold", "0.5", who="val")
    _approve()
    refused = _ship()
    assert refused.exit_code == 3, refused.output
    assert "never pays back" in refused.stderr
    assert "evaluation #1's predictions carry no confidence (120 of 120 rows)" in refused.stderr
    assert "--serve-every-answer" in refused.stderr


def test_without_any_threshold_the_refusal_also_names_the_missing_confidence(imported):
    _approve()
    refused = _ship()
    assert refused.exit_code == 3 and "no fallback threshold has been proposed for it" in refused.stderr
    assert "carry no confidence" in refused.stderr


def test_the_operator_chooses_serve_every_answer_and_ship_passes(imported, operator):
    out = ok("review", "threshold", NAME, "1", "--serve-every-answer", who=operator)
    assert "serve every answer" in out and "the student serves 100.0%" in out
    _approve()
    shipped = _ship()
    assert shipped.exit_code == 0 and "ship recorded" in shipped.output, shipped.output
    with Session(db.get_engine()) as session:
        op = session.exec(select(User).where(User.username == operator)).one()
        [row] = session.exec(select(ThresholdProposal)).all()
        assert (row.threshold, row.served_share, row.fallback_rate, row.created_by) == (0.0, 1.0, 0.0, op.id)
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "review.threshold")).all()
        assert event.actor == operator and '"choice":"serve every answer"' in event.payload
    assert "serve every answer" in ok("record", NAME, who="spon")


def test_serve_every_answer_is_threshold_zero_and_nothing_else(imported, operator):
    refused = run("review", "threshold", NAME, "1", "--serve-every-answer", "--threshold", "0.5", who=operator)
    assert refused.exit_code == 2 and "threshold 0" in refused.stderr


def test_the_driver_cannot_choose_to_serve_every_answer(imported):
    refused = run("review", "threshold", NAME, "1", "--serve-every-answer", who="drv")
    assert refused.exit_code == 3 and "Only a validator or an operator" in refused.stderr
    with Session(db.get_engine()) as session:
        assert session.exec(select(ThresholdProposal)).all() == []


def test_a_file_whose_confidence_is_blank_on_some_rows_says_how_many(tmp_path):
    rows = tickets()
    new_project(tmp_path, "Half", rows, triage_gate())
    preds = predictions(exported(tmp_path, "Half"), rows)
    preds.loc[: len(preds) // 2 - 1, "confidence"] = None
    path = tmp_path / "preds.csv"
    preds.to_csv(path, index=False)
    out = ok("eval", "import", "Half", str(path))
    assert f"No confidence: {len(preds) // 2} of the student's {len(preds)} answers carry no confidence" in out
    assert "those answers fall back to the teacher" in out


def test_the_review_page_says_what_is_missing_and_records_the_choice(imported, operator):
    from pages_helpers import app_as, by_label

    from core.access import projects

    with Session(db.get_engine()) as session:
        op = session.exec(select(User).where(User.username == operator)).one()
        project_id = projects.get_project(session, NAME).id
    at = app_as(op, page="pages/review.py", project_id=project_id)
    warned = [w.value.replace("\\", "") for w in at.warning]  # the page escapes Markdown
    assert any("carry no confidence (120 of 120 rows)" in w for w in warned), warned
    by_label(at.button, "Serve every answer of evaluation #1 (threshold 0, no fallback)").click().run()
    assert any(s.value.startswith("Proposed for rollout: threshold 0.00 (serve every answer)") for s in at.success)
    with Session(db.get_engine()) as session:
        [row] = session.exec(select(ThresholdProposal)).all()
        assert (row.fallback_rate, row.created_by) == (0.0, op.id)
