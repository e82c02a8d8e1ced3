"""The disagreement queue: what differs, critical slices and severe classes first, filterable by slice."""

from __future__ import annotations

import pytest
from review_helpers import make_evaluation, moderation_predictions

from core.domain.errors import InvalidInput, NotFound
from core.evaluation.runs import load_predictions
from core.review import review


def test_queue_holds_only_disagreements(session, gated, failing_eval):
    q = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, limit=None)
    df = load_predictions(session, failing_eval)
    expected = df[(df.student_label != df.teacher_label) | (df.student_label != df.reference)
                  | (df.teacher_label != df.reference)]
    assert set(q.items["id"]) == set(expected["id"]) and q.total == len(expected)


def test_queue_puts_critical_slices_first_then_least_confident(session, gated, failing_eval):
    items = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, limit=None).items
    critical = items["critical_slice"].tolist()
    assert critical == sorted(critical, reverse=True) and critical[0]
    head = items[items["critical_slice"]]
    assert (head["category"] == "threat").all()
    assert head["student_confidence"].is_monotonic_increasing


def test_severe_class_outranks_other_rows_outside_critical_slices(session, demo, gated):
    df = moderation_predictions()
    df.loc[df.index[-1], ["reference", "teacher_label", "student_label", "category"]] = ["threat", "threat",
                                                                                          "ok", "other"]
    ev = make_evaluation(session, project=gated, actor=demo["dana"], df=df)
    items = review.disagreement_queue(session, project=gated, evaluation_id=ev.id, limit=None).items
    rest = items[~items["critical_slice"]]
    assert rest.iloc[0]["id"] == df.iloc[-1]["id"] and bool(rest.iloc[0]["severe_class"])


def test_queue_filters_by_slice_and_limits(session, gated, failing_eval):
    q = review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id,
                                  slice=("category", "spam"), limit=3)
    assert len(q.items) <= 3 and (q.items["category"] == "spam").all() and q.total >= len(q.items)


def test_every_offered_slice_value_selects_its_rows_even_when_numeric(session, demo, gated):
    # The page offers review.slice_values; each must select exactly its rows through the queue's own filter,
    # also for a column the file gave as numbers (the filter compares text).
    df = moderation_predictions()
    df["language"] = [i % 3 for i in range(len(df))]
    ev = make_evaluation(session, project=gated, actor=demo["dana"], df=df)
    total = review.disagreement_queue(session, project=gated, evaluation_id=ev.id, limit=None).total
    values = review.slice_values(load_predictions(session, ev), "language")
    assert values == ["0", "1", "2"]
    parts = [review.disagreement_queue(session, project=gated, evaluation_id=ev.id, slice=("language", v),
                                       limit=None).total for v in values]
    assert sum(parts) == total and all(parts)


def test_unknown_slice_column_names_the_choices(session, gated, failing_eval):
    with pytest.raises(InvalidInput, match="category, language"):
        review.disagreement_queue(session, project=gated, evaluation_id=failing_eval.id, slice=("tier", "x"))


def test_evaluation_of_another_project_is_not_found(session, demo, gated, failing_eval):
    from core.access import projects

    routing = projects.get_project(session, "Support ticket routing")
    with pytest.raises(NotFound):
        review.disagreement_queue(session, project=routing, evaluation_id=failing_eval.id)
