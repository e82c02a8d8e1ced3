"""Evaluations side by side: every criterion and slice of each, with intervals and the change from the base;
only this project's evaluations, each report hash-checked, and at least two."""

from __future__ import annotations

import pytest
from review_helpers import make_evaluation, moderation_predictions, passing_predictions

from core.domain.errors import GovernanceViolation, InvalidInput, NotFound
from core.evaluation import compare, runs


@pytest.fixture
def two(session, demo, gated):
    worse = make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions())
    better = make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions())
    return worse, better


def test_every_criterion_and_slice_of_both_with_the_change_from_the_base(session, gated, two):
    worse, better = two
    side = compare.compare(session, project=gated, evaluation_ids=[worse.id, better.id])
    reports = {e.id: runs.load_report(session, e) for e in two}
    names = {r.name for r in side.rows if r.kind == "criterion"}
    assert names == {c.name for rep in reports.values() for c in rep.criteria}
    threat = next(r for r in side.rows if r.name == "category=threat: accuracy")
    want = {e: next(s for s in reports[e].slices if (s.column, s.value) == ("category", "threat")) for e in reports}
    for eid, s in want.items():
        fig = threat.figure(eid)
        assert (fig.value, fig.ci_low, fig.ci_high) == (s.student.accuracy, s.student.ci_low, s.student.ci_high)
        assert fig.below >= 0 and fig.above >= 0
    assert threat.delta(better.id, worse.id) == pytest.approx(want[better.id].student.accuracy
                                                              - want[worse.id].student.accuracy)
    line = next(t for t in side.lines() if t["Name"] == "category=threat: accuracy")
    assert line[f"Δ #{better.id} r1"] == pytest.approx(threat.delta(better.id, worse.id), abs=1e-4)
    assert "[" in line[f"#{worse.id} r1"]  # the interval is shown beside the figure


def test_one_evaluation_or_an_unknown_one_is_refused(session, gated, two):
    worse, _ = two
    with pytest.raises(InvalidInput, match="two or more"):
        compare.compare(session, project=gated, evaluation_ids=[worse.id, worse.id])
    with pytest.raises(NotFound):
        compare.compare(session, project=gated, evaluation_ids=[worse.id, 999])


def test_a_report_edited_on_disk_is_refused_not_compared(session, gated, two):
    from core.store.artifacts import path_of
    from core.store.models import Artifact

    worse, better = two
    path = path_of(session.get(Artifact, better.report_artifact_id))
    path.write_bytes(path.read_bytes().replace(b'"passed"', b'"passed" '))
    with pytest.raises(GovernanceViolation):
        compare.compare(session, project=gated, evaluation_ids=[worse.id, better.id])
