"""Rounds close when they are decided: an evaluation made after a decision never joins the decided round, every
view of a decided round shows the evaluation the decision names, and a data request counts only training rows.

The attacks: a driver imports a new evaluation after the sponsor shipped (or an evaluation job finishes after
the decision), hoping the Decide page, the record or the kill advice shows it in place of the decided one; a
driver extends the holdout with the requested slice and lets it count as training data.
"""

from __future__ import annotations

import pandas as pd
import pytest
from byo_helpers import (
    _ship,
    exported,
    new_project,
    ok,
    predictions,
    run,
    tickets,
    triage_gate,
)
from review_helpers import approve, make_evaluation, moderation_predictions, passing_predictions

from core.decision import decision, record
from core.domain.errors import RoundClosed
from core.evaluation import runs
from core.gate import gate


def _later_in_the_same_round(session, demo, project, df, round_=1):
    """An evaluation of a round that is already decided, as `eval import` recorded it before rounds closed (or
    as an insider adds one): the views must keep showing the decided evaluation."""
    return make_evaluation(session, project=project, actor=demo["dana"], df=df, round_=round_)


# --------------------------------------------------------------------------- import after a decision


@pytest.mark.usefixtures("people")
def test_an_import_after_a_ship_is_refused_with_a_sentence_and_records_nothing(tmp_path, request):
    model_dir = request.getfixturevalue("saved_student")
    rows = tickets()
    new_project(tmp_path, "Shipped", rows, triage_gate())
    path = tmp_path / "preds.csv"
    predictions(exported(tmp_path, "Shipped"), rows).to_csv(path, index=False)
    ok("eval", "import", "Shipped", str(path), "--latency-model-dir", str(model_dir))
    assert "ship recorded" in _ship("Shipped", 1)
    refused = run("eval", "import", "Shipped", str(path), "--latency-model-dir", str(model_dir))
    assert refused.exit_code == 3, refused.output
    assert "decided ship in round 1 on evaluation #1" in refused.stderr
    assert ok("eval", "list", "Shipped").count("imported") == 1  # nothing joined the decided round


def test_an_evaluation_finishing_after_its_round_was_decided_is_refused(session, demo, gated, failing_eval):
    """An evaluation job that started before the sponsor's iterate and finished after it: its report says round 1,
    which is closed; it is refused rather than slipped into the decided round."""
    decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="more threats",
                    evaluation_id=failing_eval.id)
    report = runs.load_report(session, failing_eval)
    with pytest.raises(RoundClosed, match="round 1 was decided iterate.*round 2 is open"):
        runs.record(session, actor=demo["dana"], project=gated, gate_version=gate.current(session,
                                                                                         project_id=gated.id),
                    predictions=moderation_predictions(), report=report, summary={}, source="imported")
    assert [e.id for e in runs.list_evaluations(session, project_id=gated.id)] == [failing_eval.id]


def test_after_a_kill_no_round_is_open(session, demo, gated, failing_eval):
    decision.decide(session, actor=demo["sam"], project=gated, decision="kill", rationale="not worth it",
                    evaluation_id=failing_eval.id)
    with pytest.raises(RoundClosed, match="decided kill in round 1 on evaluation"):
        runs.current_round(session, project_id=gated.id)


# --------------------------------------------------------------------------- views of a decided round


@pytest.fixture
def shipped_then_later(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="meets the bar",
                    evaluation_id=passing_eval.id)
    return _later_in_the_same_round(session, demo, gated, moderation_predictions(threat_wrong=20))


def test_the_decide_evidence_shows_the_shipped_evaluation_not_a_later_one(session, gated, passing_eval,
                                                                           shipped_then_later):
    ev = decision.evidence(session, project=gated)
    assert ev.evaluation.id == passing_eval.id and ev.passed
    assert ev.closed_by is not None and ev.closed_by.decision == "ship"
    [summary] = ev.rounds
    assert (summary.evaluation_id, summary.decision) == (passing_eval.id, "ship")


def test_the_decide_page_shows_the_shipped_evaluation_and_offers_no_decision(demo, gated, passing_eval,
                                                                             shipped_then_later):
    from pages_helpers import app_as

    at = app_as(demo["sam"], page="pages/decide.py", project_id=gated.id)
    assert f"Evaluation #{passing_eval.id}" in at.success[0].value
    assert not any("the gate is not met" in e.value for e in at.error)
    assert not any("Ship is refused" in w.value for w in at.warning)
    assert not [r for r in at.radio if r.label == "Decision"]  # the decision is final: no form


def test_the_record_names_the_decided_evaluation(session, demo, gated, passing_eval, shipped_then_later):
    md = record.export(session, actor=demo["sam"], project=gated, fmt="md").replace("\\", "")
    assert f"Payback of evaluation #{passing_eval.id} " in md
    assert f"Payback of evaluation #{shipped_then_later.id} " not in md
    assert f"| {passing_eval.id} | 1 | imported |" in md and "ship (decision #" in md


def test_kill_advice_reads_the_decided_evaluations_not_the_drivers_latest(session, demo, gated):
    """Three stuck rounds: the driver adds, after round 1 was decided, a far worse evaluation to round 1 so
    that round 3 looks like progress. The advice must compare the evaluations the decisions named."""
    stuck = moderation_predictions(threat_wrong=8)
    for rnd in (1, 2):
        ev = make_evaluation(session, project=gated, actor=demo["dana"], df=stuck, round_=rnd)
        decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="again",
                        evaluation_id=ev.id)
        if rnd == 1:
            _later_in_the_same_round(session, demo, gated, moderation_predictions(threat_wrong=30), round_=1)
    make_evaluation(session, project=gated, actor=demo["dana"], df=stuck, round_=3)
    advice = decision.evidence(session, project=gated).kill
    assert advice is not None and "slice category=threat" in advice.stuck
    assert "recommends kill" in record.export(session, actor=demo["sam"], project=gated, fmt="md")


def test_an_open_round_without_an_evaluation_shows_none_from_the_previous_round(session, demo, gated,
                                                                                failing_eval):
    decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="more threats",
                    evaluation_id=failing_eval.id)
    ev = decision.evidence(session, project=gated)
    assert (ev.round, ev.evaluation, ev.closed_by) == (2, None, None)
    second = make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions(), round_=2)
    assert decision.evidence(session, project=gated).evaluation.id == second.id


# --------------------------------------------------------------------------- data requests


@pytest.mark.usefixtures("people")
def test_rows_that_went_into_the_holdout_do_not_count_toward_a_training_request(tmp_path):
    rows = tickets()
    new_project(tmp_path, "Requests", rows, triage_gate())
    path = tmp_path / "preds.csv"
    predictions(exported(tmp_path, "Requests"), rows, wrong_on="security").to_csv(path, index=False)
    ok("eval", "import", "Requests", str(path))
    out = ok("decide", "Requests", "--decision", "iterate", "--evaluation", "1", "--rationale", "security fails",
             who="spon")
    assert "queue=security (FAIL): 100 more training examples" in out
    fresh = pd.DataFrame([{"id": f"S{i:03d}", "text": f"new breach report {i} account hijacked code {i * 7}",
                           "reference": "security", "queue": "security"} for i in range(30)])
    fresh.to_csv(tmp_path / "fresh.csv", index=False)
    ok("data", "import", "Requests", str(tmp_path / "fresh.csv"), "--id", "id", "--text", "text", "--reference",
       "reference", "--slice", "queue", "--name", "fresh")
    ok("data", "holdout-extend", "Requests", "2", "--ids", ",".join(f"S{i:03d}" for i in range(12)), "--reason",
       "judge security on more rows")
    said = ok("data", "requests", "Requests")
    assert "100 more training examples asked in round 1, 18 added by dataset #2" in said, said
    assert "open: 82 to go" in said

