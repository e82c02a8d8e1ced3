"""The review page as a stream (AppTest): nothing preselected, the next unreviewed item after each verdict with
an empty comment, previous/next, the progress moving, a deep link opening its item, and the sign-off form that
chooses nothing for the validator and empties its comment once signed."""

from __future__ import annotations

from pages_helpers import app_as, by_label
from sqlmodel import select

from core.review import review, stream
from core.store.models import ReviewVerdict, SignOff


def _order(session, project, evaluation) -> list[str]:
    return review.disagreement_queue(session, project=project, evaluation_id=evaluation.id,
                                     limit=None).items["id"].astype(str).tolist()


def _shown(at) -> str:
    """The item the stream shows: its id is the first bold line after the caption 'Item k of n'."""
    return next(m.value.strip("*").split("**")[0] for m in at.markdown if m.value.startswith("**"))


def test_nothing_is_preselected_and_a_verdict_brings_up_the_next_item(demo, session, gated, failing_eval):
    order = _order(session, gated, failing_eval)
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    assert _shown(at) == order[0]
    assert by_label(at.select_slider, "Rating of the student's answer (optional)").value is None
    assert by_label(at.radio, "Your sign-off").value is None
    assert [b.label for b in at.button if b.label in review.VERDICTS] == list(review.VERDICTS)  # no radio to preset
    assert at.get("progress")[0].proto.text.startswith(f"You reviewed 0 of {len(order):,}")

    by_label(at.text_input, "Comment (optional)").input("the teacher misread it")
    by_label(at.select_slider, "Rating of the student's answer (optional)").set_value(2)
    by_label(at.button, "teacher-right").click().run()
    [v] = session.exec(select(ReviewVerdict)).all()
    assert (v.item_id, v.verdict, v.comment, v.rating) == (order[0], "teacher-right", "the teacher misread it", 2)
    assert _shown(at) == order[1]
    assert by_label(at.text_input, "Comment (optional)").value == ""  # the comment does not follow the item
    assert by_label(at.select_slider, "Rating of the student's answer (optional)").value is None
    assert at.get("progress")[0].proto.text.startswith(f"You reviewed 1 of {len(order):,}")


def test_previous_and_next_move_and_a_judged_item_shows_its_verdict(demo, session, gated, failing_eval):
    order = _order(session, gated, failing_eval)
    review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                          item_id=order[0], verdict="ambiguous")
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    assert _shown(at) == order[1]
    by_label(at.button, "Next").click().run()
    assert _shown(at) == order[2]
    by_label(at.button, "Previous").click().run()
    by_label(at.button, "Previous").click().run()
    assert _shown(at) == order[0] and by_label(at.button, "Previous").disabled
    assert any("Your verdict: ambiguous" in i.value for i in at.info)
    assert not [b for b in at.button if b.label in review.VERDICTS]  # verdicts are final: no form


def test_a_deep_link_opens_its_item(demo, session, gated, failing_eval):
    order = _order(session, gated, failing_eval)
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    at.query_params["item"] = order[5]
    at.query_params["evaluation"] = str(failing_eval.id)
    at.run()
    assert _shown(at) == order[5]


def test_the_value_box_reads_a_placeholder_until_a_column_is_picked(demo, session, gated, failing_eval):
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    value = by_label(at.selectbox, "Value")
    assert value.disabled and value.value is None and value.options == []
    assert "pick a slice column first" in value.proto.placeholder
    total = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, limit=1).total
    assert any(c.value.startswith(f"{stream.counted(total, 'example')} where") for c in at.caption)
    by_label(at.selectbox, "Slice column").set_value("category").run()
    assert not by_label(at.selectbox, "Value").disabled and by_label(at.selectbox, "Value").value is not None


def test_signing_off_with_nothing_chosen_is_refused_and_the_comment_empties_once_signed(demo, session, gated,
                                                                                       failing_eval):
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    by_label(at.text_area, "Comment (required to reject)").input("the threat slice fails")
    by_label(at.button, f"Sign off evaluation #{failing_eval.id}").click().run()
    assert "choose approve or reject" in at.error[0].value and session.exec(select(SignOff)).all() == []
    assert by_label(at.text_area, "Comment (required to reject)").value == "the threat slice fails"  # kept
    by_label(at.radio, "Your sign-off").set_value("reject")
    by_label(at.button, f"Sign off evaluation #{failing_eval.id}").click().run()
    assert len(session.exec(select(SignOff)).all()) == 1
    assert by_label(at.text_area, "Comment (required to reject)").value == ""
    assert by_label(at.radio, "Your sign-off").value is None


def test_a_verdict_refused_by_core_is_said_and_the_stream_goes_on(demo, session, gated, failing_eval):
    order = _order(session, gated, failing_eval)
    at = app_as(demo["val"], page="pages/review.py", project_id=gated.id)
    review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                          item_id=order[0], verdict="ambiguous")  # judged meanwhile, in another tab
    by_label(at.text_input, "Comment (optional)").input("second thoughts")
    by_label(at.button, "both-wrong").click().run()
    assert "already recorded a verdict" in at.error[0].value
    assert [v.verdict for v in session.exec(select(ReviewVerdict)).all()] == ["ambiguous"]
    assert _shown(at) == order[1]  # the item judged elsewhere is no longer the next to review
