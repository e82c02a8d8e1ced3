"""Verdicts: validators only, never a driver, one per item and validator, blind to each other."""

from __future__ import annotations

import pytest
from review_helpers import add_validator
from sqlmodel import select

from core.domain.errors import InvalidInput, PermissionDenied, SeparationOfDuties
from core.review import review
from core.store.models import AuditEvent, ReviewVerdict


def _verdict(session, actor, project, ev, item="c0", verdict="teacher-right", **kw):
    return review.record_verdict(session, actor=actor, project=project, evaluation_id=ev.id, item_id=item,
                                 verdict=verdict, comment=kw.pop("comment", "missed a threat"), **kw)


def test_validator_records_a_verdict_with_its_audit_event(session, demo, gated, failing_eval):
    row = _verdict(session, demo["val"], gated, failing_eval, rating=2)
    assert (row.verdict, row.rating, row.validator_id) == ("teacher-right", 2, demo["val"].id)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "review.verdict")).one()
    assert event.entity_id == str(row.id) and '"item_id":"c0"' in event.payload


def test_driver_can_never_record_a_verdict(session, demo, gated, failing_eval):
    with pytest.raises(SeparationOfDuties, match="dana built evidence behind evaluation"):
        _verdict(session, demo["dana"], gated, failing_eval)
    assert session.exec(select(ReviewVerdict)).all() == []


def test_sponsor_is_not_a_validator(session, demo, gated, failing_eval):
    with pytest.raises(PermissionDenied, match="Only a validator"):
        _verdict(session, demo["sam"], gated, failing_eval)


def test_item_must_be_in_the_evaluation(session, demo, gated, failing_eval):
    with pytest.raises(InvalidInput, match="item 'nope' is not in evaluation"):
        _verdict(session, demo["val"], gated, failing_eval, item="nope")


@pytest.mark.parametrize("kw, fragment", [({"verdict": "maybe"}, "not one of"), ({"rating": 6}, "1 to 5")])
def test_bad_verdict_or_rating_is_refused(session, demo, gated, failing_eval, kw, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        _verdict(session, demo["val"], gated, failing_eval, **kw)


def test_second_verdict_on_the_same_item_is_refused(session, demo, gated, failing_eval):
    _verdict(session, demo["val"], gated, failing_eval)
    with pytest.raises(InvalidInput, match="already recorded a verdict on item 'c0'"):
        _verdict(session, demo["val"], gated, failing_eval, verdict="ambiguous")
    assert len(session.exec(select(ReviewVerdict)).all()) == 1


def test_validators_see_only_their_own_verdicts(session, demo, gated, failing_eval):
    vera = add_validator(session, demo, gated, "vera")
    _verdict(session, demo["val"], gated, failing_eval, verdict="teacher-right")
    _verdict(session, vera, gated, failing_eval, verdict="both-wrong")
    mine = review.my_verdicts(session, actor=vera, evaluation_id=failing_eval.id)
    assert [(v.item_id, v.verdict) for v in mine] == [("c0", "both-wrong")]
    assert [v.verdict for v in review.my_verdicts(session, actor=demo["val"], evaluation_id=failing_eval.id)] == [
        "teacher-right"]


def test_fractional_rating_is_refused(session, demo, gated, failing_eval):
    with pytest.raises(InvalidInput, match="whole number from 1 to 5"):
        _verdict(session, demo["val"], gated, failing_eval, rating=2.5)


def test_ratings_give_the_human_rating_metric(session, demo, gated, failing_eval):
    from review_helpers import review_items

    from core.review import review

    items = review_items(session, failing_eval, column="category", value="threat", n=3)
    for item, rating in zip(items, (5, 4, 2), strict=True):
        review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                              item_id=item, verdict="student-right", rating=rating)
    rated = review.ratings(session, evaluation_id=failing_eval.id, viewer=demo["val"])
    assert (rated.n, round(rated.mean, 4), rated.counts[4]) == (3, 3.6667, 1)
