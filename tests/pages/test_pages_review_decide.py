"""The validator's review page, the sponsor's decide page and the decision record page (AppTest)."""

from __future__ import annotations

import json

from pages_helpers import app_as, by_label, frame_with, texts
from review_helpers import approve
from sqlmodel import select

from core.evaluation import rounds
from core.review import review, stream
from core.store.models import Decision, ReviewVerdict, SignOff


def test_the_review_page_shows_the_gate_worst_slices_first_and_the_queue(demo, gated, failing_eval):
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    criteria = frame_with(at, "detail")
    assert "FAIL" in criteria["status"].tolist()
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heatmap["data"][0]["type"] == "heatmap"
    assert heatmap["data"][0]["y"][0].startswith("category=threat")  # the worst slice comes first
    queue = frame_with(at, "your_verdict")
    assert len(queue) > 0 and queue["critical_slice"].iloc[0]


def test_a_validator_records_a_verdict_and_signs_off(demo, session, gated, failing_eval):
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    item = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id).item
    by_label(at.button, "both-wrong").click().run()
    assert any(f"Verdict both-wrong on {item.item_id} recorded." in s.value for s in at.success)
    [verdict] = session.exec(select(ReviewVerdict)).all()
    assert (verdict.item_id, verdict.verdict, verdict.validator_id) == (item.item_id, "both-wrong", demo["val"].id)
    by_label(at.radio, "Your sign-off").set_value("reject")
    by_label(at.text_area, "Comment (required to reject)").input("the threat slice fails")
    by_label(at.button, f"Sign off evaluation #{failing_eval.id}").click().run()
    [signed] = session.exec(select(SignOff)).all()
    assert (signed.approve, signed.evaluation_hash) == (False, failing_eval.report_hash)


def test_the_driver_cannot_review_even_through_the_page(demo, session, gated, failing_eval):
    at = app_as(demo["admin"], page="pages/review.py", project_id=gated.id)  # admins see, but hold no role
    assert "Only a validator" in at.info[0].value
    assert by_label(at.button, f"Sign off evaluation #{failing_eval.id}").disabled
    assert session.exec(select(SignOff)).all() == []


def test_the_sponsor_sees_the_evidence_and_ship_is_refused_with_the_reasons(demo, session, gated, failing_eval):
    at = app_as(demo["sam"], page="pages/decide.py", project_id=gated.id)
    assert "the gate is not met" in at.error[0].value
    assert any("Ship is refused" in w.value and "category=threat" in w.value for w in at.warning)
    radio = by_label(at.radio, "Decision")
    assert radio.value is None and radio.options == ["Iterate: a new round with more data", "Kill: keep the teacher"]
    assert "Ship is not offered while the blockers above stand." in texts(at.caption)
    by_label(at.text_area, "Rationale").input("looks good to me")
    by_label(at.button, "Record the decision").click().run()
    assert at.error[-1].value == "Choose a decision first: iterate, kill."  # nothing is chosen for the sponsor
    assert session.exec(select(Decision)).all() == []


def test_iterate_records_a_data_request_for_the_failing_slice(demo, session, gated, failing_eval):
    at = app_as(demo["sam"], page="pages/decide.py", project_id=gated.id)
    by_label(at.radio, "Decision").set_value("iterate")
    by_label(at.text_area, "Rationale").input("more threat examples first")
    by_label(at.button, "Record the decision").click().run()
    [d] = rounds.decisions(session, project_id=gated.id)
    assert d.decision == "iterate" and "threat" in json.dumps(d.data_request)
    assert any("Round 1: iterate recorded." in s.value for s in at.success)
    # The request reads as a table on the page, not as JSON folded to `{...}`.
    assert not at.json
    requested = frame_with(at, "More examples")
    assert any(s.startswith("category=threat") for s in requested["Slice"]), requested


def test_ship_after_a_passing_evaluation_is_approved(demo, session, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    at = app_as(demo["sam"], page="pages/decide.py", project_id=gated.id)
    assert "every criterion passes" in at.success[0].value
    assert not any("Ship is refused" in w.value for w in at.warning)
    by_label(at.radio, "Decision").set_value("ship")
    by_label(at.text_area, "Rationale").input("passes with an approval and a fallback")
    by_label(at.button, "Record the decision").click().run()
    assert rounds.decisions(session, project_id=gated.id)[0].decision == "ship"
    assert review.sign_offs(session, evaluation_id=passing_eval.id)[0].approve


def test_the_record_page_offers_markdown_and_html_with_the_chain_head(demo, gated, failing_eval):
    at = app_as(demo["sam"], page="pages/record.py", project_id=gated.id)
    assert not at.code  # the preview is rendered, not shown as Markdown source cut at the box's edge
    [preview] = [m.value for m in at.markdown if m.value.startswith("# Decision record")]
    assert "head" in preview.lower() and gated.name in preview
    assert len(at.get("download_button")) == 2
    # The evaluation's gate reads as the gate's label, never as its row id (the demo's gates come first).
    assert failing_eval.gate_version_id != 1 and "gate version id" not in preview
    row = next(line for line in preview.splitlines() if line.startswith(f"| {failing_eval.id} | 1 |"))
    assert "| v1 |" in row


def test_the_operator_reaches_the_review_page_and_proposes_the_threshold(demo, session, gated, failing_eval):
    at = app_as(demo["oscar"], page="pages/review.py", project_id=gated.id)
    assert by_label(at.button, f"Sign off evaluation #{failing_eval.id}").disabled  # sign-off is the validator's
    by_label(at.slider, "Below this confidence the teacher answers").set_value(0.8)
    by_label(at.button, "Propose this threshold for rollout").click().run()
    [proposal] = review.threshold_proposals(session, evaluation_id=failing_eval.id)
    assert (proposal.threshold, proposal.created_by) == (0.8, demo["oscar"].id)
    assert any(s.value.startswith("Proposed for rollout: threshold 0.80") for s in at.success)  # shown after
    assert by_label(at.slider, "Below this confidence the teacher answers").value == 0.8
