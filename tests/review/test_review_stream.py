"""The review stream: the queue's order one item at a time, the next unreviewed item after each verdict,
previous/next, blind to other validators, and the progress from the same rule sign-off checks."""

from __future__ import annotations

import pytest
from review_helpers import add_validator
from sqlmodel import select

from core.domain.errors import InvalidInput
from core.review import review, stream
from core.store.models import SignOff


def test_next_unreviewed_looks_after_the_item_and_wraps_round():
    order = ["a", "b", "c", "d"]
    assert stream.next_unreviewed(order, set()) == "a"
    assert stream.next_unreviewed(order, {"a", "b"}) == "c"
    assert stream.next_unreviewed(order, {"c"}, after="b") == "d"
    assert stream.next_unreviewed(order, {"c", "d"}, after="c") == "a"  # a skipped item comes back
    assert stream.next_unreviewed(order, set(order), after="b") is None
    assert stream.next_unreviewed(order, set(), after="not-there") == "a"
    assert stream.neighbours(order, "a") == (None, "b") and stream.neighbours(order, "d") == ("c", None)


def test_counted_says_one_example_and_two_examples():
    assert (stream.counted(1, "example"), stream.counted(2, "example"), stream.counted(0, "example")) == (
        "1 example", "2 examples", "0 examples")
    assert stream.counted(1_200, "class", "classes") == "1,200 classes"


def _verdict(session, demo, project, evaluation, item, who="val"):
    review.record_verdict(session, actor=demo[who], project=project, evaluation_id=evaluation.id, item_id=item,
                          verdict="student-right")


def test_the_stream_walks_the_queue_in_critical_order_and_moves_on_after_a_verdict(session, demo, gated,
                                                                                  failing_eval):
    order = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id,
                                      limit=None).items["id"].astype(str).tolist()
    step = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id)
    assert (step.item.item_id, step.position, step.total) == (order[0], 1, len(order))
    assert step.item.critical_slice and step.previous_id is None and step.next_id == order[1]
    assert step.after_verdict_id == order[1] and step.reviewed_by_you == 0 and not step.done

    _verdict(session, demo, gated, failing_eval, order[0])
    step = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id)
    assert step.item.item_id == order[1] and step.reviewed_by_you == 1  # the next unreviewed comes up

    back = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                                at=order[0])
    assert back.item.your_verdict == "student-right" and back.next_id == order[1]

    _verdict(session, demo, gated, failing_eval, order[2])  # judged out of order: a verdict on 1 skips it
    step = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                                at=order[1])
    assert step.after_verdict_id == order[3]


def test_the_stream_is_blind_but_its_progress_counts_every_validator(session, demo, gated, failing_eval):
    vera = add_validator(session, demo, gated, "vera")
    first = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id)
    _verdict(session, {**demo, "vera": vera}, gated, failing_eval, first.item.item_id, who="vera")
    mine = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id)
    assert mine.item.item_id == first.item.item_id and mine.item.your_verdict is None  # vera's is not val's
    assert mine.coverage == review.review_coverage(session, project=gated, evaluation_id=failing_eval.id)
    threat = next(c for c in mine.coverage if c.value == "threat")
    assert threat.reviewed == 1 and f"category=threat 1 of {threat.required}" in mine.progress()
    assert mine.progress().startswith(f"You reviewed 0 of {mine.total:,} disagreements")


def test_an_item_outside_the_queue_is_named_and_the_stream_opens_on_the_next_one(session, demo, gated,
                                                                                 failing_eval):
    step = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                                at="no-such-item")
    assert step.not_in_queue == "no-such-item" and step.position == 1


def test_a_slice_narrows_the_stream_to_it(session, demo, gated, failing_eval):
    step = stream.review_stream(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                                slice=("category", "threat"))
    whole = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, limit=None)
    assert 0 < step.total < whole.total and step.item.critical_slice


def test_a_sign_off_with_nothing_chosen_is_refused_and_records_nothing(session, demo, gated, failing_eval):
    with pytest.raises(InvalidInput, match="choose approve or reject"):
        review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id, approve=None,
                        comment="looks fine")
    assert session.exec(select(SignOff)).all() == []
