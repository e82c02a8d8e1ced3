"""Filtering teacher errors by policy: counts per reason, kept and dropped rows, what training reads."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import select
from teacher_helpers import LABELS, make_dataset, routing, ticket_rows

from core.domain.errors import InvalidInput, PermissionDenied
from core.store.models import AuditEvent, TeacherFilter
from core.teacher import filter as tf
from core.teacher import runs
from core.teacher.outputs import Prediction, run_stats, to_frame

# id -> (label, confidence); references cycle billing, technical, account with every third row blank.
ANSWERS = {
    "T0000": ("billing", 0.95),  # agrees with reference billing
    "T0001": ("billing", 0.90),  # reference technical: disagrees
    "T0002": ("account", 0.50),  # no reference, low confidence
    "T0003": ("billing", 0.60),  # agrees, low confidence
    "T0004": ("account", 0.40),  # reference technical: disagrees and low confidence
    "T0005": (None, None),  # unparseable
    "T0006": ("billing", None),  # agrees, no confidence
}


@pytest.fixture
def run(session, demo):
    project = routing(session)
    dataset = make_dataset(session, actor=demo["dana"], project=project, df=ticket_rows(7))
    preds = [Prediction(label=lab, confidence=conf,
                        probs=None if conf is None else [conf if x == lab else (1 - conf) / 2 for x in LABELS],
                        raw=lab or "I am not sure") for lab, conf in ANSWERS.values()]
    frame = to_frame(list(ANSWERS), preds)
    return runs.record_run(session, actor=demo["dana"], project=project, dataset=dataset, adapter="file",
                           config={"source": "test"}, labels=LABELS, frame=frame, stats=run_stats(frame, labels=LABELS))


def apply(session, demo, run, **policy):
    return tf.apply_filter(session, actor=demo["dana"], project=routing(session), run_id=run.id,
                           policy=tf.FilterPolicy(**policy))


def kept_ids(session, filt):
    return tf.kept_outputs(session, filter_or_run=filt)["id"].tolist()


def test_keep_all_keeps_every_readable_output_and_drops_the_unparseable(session, demo, run):
    filt = apply(session, demo, run)
    assert filt.counts["kept"] == 6 and filt.counts["by_reason"]["unparseable"] == 1
    assert "T0005" not in kept_ids(session, filt)


def test_confidence_threshold_drops_low_and_unknown_confidence(session, demo, run):
    filt = apply(session, demo, run, min_confidence=0.8)
    assert kept_ids(session, filt) == ["T0000", "T0001"]
    assert filt.counts["by_reason"] == {"unparseable": 1, "reference-disagrees": 0, "below-confidence": 3,
                                        "no-confidence": 1}


def test_reference_disagreement_drops_only_rows_with_a_contradicting_reference(session, demo, run):
    filt = apply(session, demo, run, drop_reference_disagreement=True)
    assert kept_ids(session, filt) == ["T0000", "T0002", "T0003", "T0006"]
    assert filt.counts["by_reason"]["reference-disagrees"] == 2


def test_policies_combine_and_a_row_counts_under_each_of_its_reasons(session, demo, run):
    filt = apply(session, demo, run, min_confidence=0.8, drop_reference_disagreement=True)
    assert kept_ids(session, filt) == ["T0000"]
    assert (filt.counts["total"], filt.counts["kept"], filt.counts["dropped"]) == (7, 1, 6)
    dropped = tf.dropped_rows(session, filter_id=filt.id)
    row = dropped.set_index("id").loc["T0004"]
    assert row["reasons"] == "reference-disagrees; below-confidence"
    assert row["text"].startswith("the app crashes") and row["reference"] == "technical"
    only = tf.dropped_rows(session, filter_id=filt.id, reason="reference-disagrees")
    assert sorted(only["id"]) == ["T0001", "T0004"]


def test_kept_outputs_follow_the_teacher_run_schema(session, demo, run):
    kept = tf.kept_outputs(session, filter_or_run=apply(session, demo, run, min_confidence=0.5))
    assert list(kept.columns) == ["id", "label", "confidence", "probs", "raw"]
    assert kept["confidence"].min() >= 0.5


def test_the_filter_is_recorded_with_its_counts_and_an_audit_event(session, demo, run):
    filt = apply(session, demo, run, min_confidence=0.9)
    assert tf.list_filters(session, project_id=routing(session).id, run_id=run.id)[0].id == filt.id
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "teacher.filter")).one()
    assert '"below-confidence":3' in event.payload and event.entity_id == str(filt.id)


def test_only_the_driver_filters_and_a_bad_threshold_is_refused(session, demo, run):
    with pytest.raises(PermissionDenied, match="Only a driver"):
        tf.apply_filter(session, actor=demo["val"], project=routing(session), run_id=run.id,
                        policy=tf.FilterPolicy())
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        tf.FilterPolicy(min_confidence=80)
    assert session.exec(select(TeacherFilter)).all() == []


def test_kept_outputs_of_a_run_without_filter_leave_out_unparseable_answers(session, run):
    kept = tf.kept_outputs(session, filter_or_run=run)
    assert "T0005" not in set(kept["id"]) and len(kept) == 6


def test_reasons_for_is_empty_for_a_kept_row():
    out = to_frame(["a"], [Prediction("billing", 0.9, None, "billing")])
    assert tf.reasons_for(out, pd.Series({"a": "billing"}), tf.FilterPolicy(0.5, True)).tolist() == [""]


def test_the_filters_table_counts_each_reason_and_the_kept_sentence_the_outputs_kept(session, demo, run):
    filt = apply(session, demo, run, min_confidence=0.8, drop_reference_disagreement=True)
    [row] = tf.filters_table([filt]).to_dict("records")
    assert (row["Kept"], row["Dropped"]) == (filt.counts["kept"], filt.counts["dropped"])
    assert all(row[reason] == filt.counts["by_reason"][reason] for reason in tf.REASONS)
    assert tf.kept_sentence(filt) == f"Filter #{filt.id}: kept {filt.counts['kept']:,} of 7 outputs."
