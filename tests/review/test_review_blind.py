"""Blind review everywhere: a second validator reads no verdict, rating or comment of the first on an item
until she has recorded her own on it, or a validator has approved the evaluation. Attacked as in issue 9:
through the audit log (core, CLI and page), the decision record, and the review page's figures."""

from __future__ import annotations

import json

from click.testing import CliRunner
from pages_helpers import app_as
from review_helpers import add_validator, approve, review_items

from core.access import visibility
from core.cli import cli
from core.decision import record
from core.review import review

SECRET = "secret-note-about-c0"


def _first_verdict(session, demo, gated, ev):
    review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=ev.id, item_id="c0",
                          verdict="both-wrong", rating=2, comment=SECRET)


def _verdict_details(events) -> list[dict]:
    return [json.loads(e.details) for e in events if e.action == "review.verdict"]


def test_the_audit_log_proves_the_verdict_exists_but_hides_its_content(session, demo, gated, failing_eval):
    vera = add_validator(session, demo, gated, "vera")
    _first_verdict(session, demo, gated, failing_eval)

    events, _ = visibility.visible_events(session, viewer=vera, project_id=gated.id)
    [shown] = _verdict_details(events)
    assert shown == {"evaluation_id": failing_eval.id, "item_id": "c0", "verdict": "verdict recorded"}
    assert all(SECRET not in e.details for e in events)
    # the author sees her own verdict
    own, _ = visibility.visible_events(session, viewer=demo["val"], project_id=gated.id)
    assert _verdict_details(own)[0]["comment"] == SECRET
    # the review page's figures are blind too
    assert review.ratings(session, evaluation_id=failing_eval.id, viewer=vera).n == 0

    # once she has recorded her own verdict on c0, she may compare
    review.record_verdict(session, actor=vera, project=gated, evaluation_id=failing_eval.id, item_id="c0",
                          verdict="teacher-right")
    events, _ = visibility.visible_events(session, viewer=vera, project_id=gated.id)
    assert {d.get("comment") for d in _verdict_details(events)} == {SECRET, ""}
    assert review.ratings(session, evaluation_id=failing_eval.id, viewer=vera).n == 1


def test_the_cli_audit_log_and_the_record_hide_the_first_validators_verdict(session, demo, gated, failing_eval):
    add_validator(session, demo, gated, "vera")
    _first_verdict(session, demo, gated, failing_eval)
    log = CliRunner().invoke(cli, ["--as", "vera", "audit", "log", "--project", gated.name])
    assert log.exit_code == 0, log.output
    assert "verdict recorded" in log.output and SECRET not in log.output and "both-wrong" not in log.output
    text = record.export(session, actor=demo["sam"], project=gated, fmt="md")
    assert "both-wrong" not in text and "hidden until you review" in text
    mine = record.export(session, actor=demo["val"], project=gated, fmt="md")
    assert "both-wrong 1" in mine


def test_the_audit_page_shows_the_second_validator_no_verdict_content(session, demo, gated, failing_eval):
    vera = add_validator(session, demo, gated, "vera")
    _first_verdict(session, demo, gated, failing_eval)
    at = app_as(vera, page="pages/audit.py", project_id=gated.id)
    events = at.dataframe[0].value
    details = events.loc[events["Action"] == "review.verdict", "Details"].tolist()
    assert len(details) == 1 and "verdict recorded" in details[0]
    assert not events["Details"].astype(str).str.contains(SECRET).any()
    assert not events["Details"].astype(str).str.contains("both-wrong").any()


def test_after_approval_everyone_on_the_project_sees_the_verdicts(session, demo, gated, passing_eval):
    vera = add_validator(session, demo, gated, "vera")
    item = review_items(session, passing_eval, column="category", value="threat", n=6)[-1]
    review.record_verdict(session, actor=vera, project=gated, evaluation_id=passing_eval.id, item_id=item,
                          verdict="ambiguous", comment=SECRET)
    events, _ = visibility.visible_events(session, viewer=demo["sam"], project_id=gated.id)
    assert SECRET not in " ".join(e.details for e in events)
    approve(session, demo, gated, passing_eval)  # val reviews five threats and approves
    events, _ = visibility.visible_events(session, viewer=demo["sam"], project_id=gated.id)
    assert SECRET in " ".join(e.details for e in events)
    assert [p.validator_b for p in review.agreement(session, evaluation_id=passing_eval.id, viewer=demo["sam"])] \
        == ["vera"]
