"""Several teachers combined: averaged probabilities or a majority vote, each teacher's own run kept."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from teacher_helpers import LABELS, make_dataset, routing, ticket_rows

from core.domain.errors import InvalidInput
from core.store.models import AuditEvent
from core.teacher import runs
from core.teacher.filter import kept_outputs
from core.teacher.outputs import Prediction, run_stats, to_frame


def add_run(session, demo, dataset, answers: dict[str, tuple[str | None, list[float] | None]], labels=LABELS):
    frame = to_frame(list(answers), [Prediction(lab, max(p) if p else None, p, lab or "?") for lab, p in
                                     answers.values()])
    return runs.record_run(session, actor=demo["dana"], project=routing(session), dataset=dataset, adapter="file",
                           config={}, labels=labels, frame=frame, stats=run_stats(frame, labels=labels))


@pytest.fixture
def three(session, demo):
    dataset = make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(6))
    a = add_run(session, demo, dataset, {"T0000": ("billing", [0.6, 0.3, 0.1]), "T0001": ("account", None),
                                         "T0002": (None, None)})
    b = add_run(session, demo, dataset, {"T0000": ("technical", [0.2, 0.7, 0.1]), "T0001": ("account", None),
                                         "T0002": ("billing", [0.9, 0.05, 0.05])})
    c = add_run(session, demo, dataset, {"T0000": ("technical", [0.4, 0.5, 0.1]), "T0001": ("billing", None)})
    return dataset, [a, b, c]


def combine(session, demo, members, method):
    return runs.combine_runs(session, actor=demo["dana"], project=routing(session), run_ids=[r.id for r in members],
                             method=method)


def test_mean_averages_the_distributions_of_the_runs_that_answered(session, demo, three):
    _, members = three
    run = combine(session, demo, members, "mean")
    out = kept_outputs(session, filter_or_run=run).set_index("id")
    assert out.loc["T0000", "probs"].tolist() == pytest.approx([0.4, 0.5, 0.1])
    assert out.loc["T0000", "label"] == "technical" and out.loc["T0000", "confidence"] == pytest.approx(0.5)
    assert out.loc["T0001", "label"] == "account"  # two one-hot votes against one
    assert out.loc["T0002", "probs"].tolist() == pytest.approx([0.9, 0.05, 0.05])  # only run b read it
    assert (run.adapter, run.config) == ("ensemble", {"method": "mean", "runs": [m.id for m in members]})


def test_vote_takes_the_majority_and_records_each_runs_label(session, demo, three):
    _, members = three
    run = combine(session, demo, members, "vote")
    out = kept_outputs(session, filter_or_run=run).set_index("id")
    assert out.loc["T0000", "label"] == "technical" and out.loc["T0000", "confidence"] == pytest.approx(2 / 3)
    assert json.loads(out.loc["T0000", "raw"]) == {f"run {members[0].id}": "billing",
                                                   f"run {members[1].id}": "technical",
                                                   f"run {members[2].id}": "technical"}
    assert json.loads(out.loc["T0002", "raw"])[f"run {members[0].id}"] is None


def test_each_runs_outputs_are_kept_unchanged(session, demo, three):
    _, members = three
    before = [kept_outputs(session, filter_or_run=m).to_json() for m in members]
    combine(session, demo, members, "mean")
    assert [kept_outputs(session, filter_or_run=m).to_json() for m in members] == before
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "teacher.run")).all()[-1].payload.count(
        '"adapter":"ensemble"') == 1


def test_runs_on_different_datasets_or_a_single_run_are_refused(session, demo, three):
    dataset, members = three
    other = make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(6))
    stray = add_run(session, demo, other, {"T0000": ("billing", None)})
    with pytest.raises(InvalidInput, match="answer different datasets"):
        combine(session, demo, [members[0], stray], "mean")
    with pytest.raises(InvalidInput, match="at least two teacher runs"):
        combine(session, demo, members[:1], "vote")
    with pytest.raises(InvalidInput, match="use mean .* or vote"):
        combine(session, demo, members, "median")


def test_a_combined_run_says_which_runs_it_combines(session, demo, three):
    _, members = three
    run = combine(session, demo, members, "vote")
    ids = ", ".join(str(m.id) for m in members)
    assert runs.combined_sentence(run) == f"Teacher run #{run.id} combines runs {ids}."
