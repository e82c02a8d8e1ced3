"""Iterate: a data request aimed at the failing slices, the next round opened, one decision per round."""

from __future__ import annotations

import pytest
from review_helpers import make_evaluation, moderation_predictions

from core.decision import decision
from core.domain.errors import GovernanceViolation, InvalidInput
from core.evaluation import rounds


def _iterate(session, demo, project, ev):
    return decision.decide(session, actor=demo["sam"], project=project, decision="iterate",
                           rationale="threats are missed", evaluation_id=ev.id)


def test_moderation_case_iterate_requests_data_for_the_failing_slice(session, demo, gated, failing_eval):
    row = _iterate(session, demo, gated, failing_eval)
    [wanted, *severe] = row.data_request["slices"]
    assert (wanted["column"], wanted["value"], wanted["status"], wanted["for"]) == (
        "category", "threat", "FAIL", "training")
    # the failing severe-class criterion asks for examples whose reference is the class, not nothing
    assert [(w["column"], w["value"], w["for"]) for w in severe] == [("reference", "threat", "training")]
    assert wanted["more_examples"] == max(decision.MIN_EXTRA_EXAMPLES, 40)
    assert "slice category=threat" in row.data_request["failing_criteria"]
    assert rounds.current_round(session, project_id=gated.id) == 2


def test_insufficient_data_asks_for_the_shortfall(session, demo, gated):
    df = moderation_predictions(n_threat=12, threat_wrong=0)
    ev = make_evaluation(session, project=gated, actor=demo["dana"], df=df)
    [wanted] = _iterate(session, demo, gated, ev).data_request["slices"]
    assert (wanted["status"], wanted["n"], wanted["more_examples"], wanted["for"]) == (
        "INSUFFICIENT DATA", 12, 30 - 12, "holdout")


def test_one_decision_per_round_and_evaluations_of_the_open_round_only(session, demo, gated, failing_eval):
    _iterate(session, demo, gated, failing_eval)
    with pytest.raises(GovernanceViolation, match="belongs to round 1 but round 2 is open"):
        _iterate(session, demo, gated, failing_eval)
    second = make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions(seed=3),
                             round_=2)
    assert _iterate(session, demo, gated, second).round == 2
    history = decision.rounds_history(session, project_id=gated.id)
    assert [(r.round, r.decision) for r in history] == [(1, "iterate"), (2, "iterate")]


def test_iterate_needs_an_evaluation_but_kill_does_not(session, demo, gated, failing_eval):
    with pytest.raises(InvalidInput, match="name the evaluation"):
        decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="more data")
    row = decision.decide(session, actor=demo["sam"], project=gated, decision="kill", rationale="not worth it")
    assert (row.decision, row.evaluation_id, row.data_request) == ("kill", None, {})


def test_a_racing_second_decision_on_the_same_round_is_refused(session, demo, gated, failing_eval, monkeypatch):
    _iterate(session, demo, gated, failing_eval)
    # A second sponsor who read the open round before the first decision committed.
    monkeypatch.setattr(decision, "current_round", lambda session, *, project_id: 1)
    with pytest.raises(GovernanceViolation, match="Round 1 of project 'Comment moderation' is already decided"):
        decision.decide(session, actor=demo["sam"], project=gated, decision="kill", rationale="stop",
                        evaluation_id=failing_eval.id)
    assert len(rounds.decisions(session, project_id=gated.id)) == 1
