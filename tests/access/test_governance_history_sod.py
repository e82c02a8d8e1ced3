"""Separation of duties over history: whoever created evidence behind an evaluation never judges it, whatever
roles they hold now. Attacked as in issue 9: a driver builds and evaluates, an admin swaps her role to
validator, she approves her own work."""

from __future__ import annotations

import pandas as pd
import pytest
from review_helpers import make_evaluation, moderation_predictions
from sqlmodel import select
from teacher_helpers import make_dataset

from core.access import people, projects, separation
from core.data import holdout
from core.decision import decision
from core.domain.errors import SeparationOfDuties
from core.evaluation import runs
from core.review import review
from core.store.models import Evaluation, Project, ReviewVerdict, SignOff, TrainingRun, User
from core.teacher import runs as teacher_runs


def _build(session, *, data_by: User, driver: User, project: Project, tmp_path) -> Evaluation:
    """Data imported by ``data_by``; holdout, teacher run, training run and evaluation by ``driver``."""
    dataset = make_dataset(session, actor=data_by, project=project)
    holdout.fix_holdout(session, actor=driver, project=project, dataset_id=dataset.id, fraction=0.2)
    df = teacher_runs.dataset_table(session, dataset)
    path = tmp_path / "teacher.csv"
    pd.DataFrame({"id": df["id"], "label": df["queue"]}).to_csv(path, index=False)
    teacher = teacher_runs.import_file(session, actor=driver, project=project, dataset_id=dataset.id, path=path)
    run = TrainingRun(project_id=project.id, gate_version_id=_gate_id(session, project),
                      teacher_run_id=teacher.id, family="ngram", size="tiny", status="done", created_by=driver.id)
    session.add(run)
    session.commit()
    return make_evaluation(session, project=project, actor=driver, df=moderation_predictions(n=200, n_threat=40),
                           training_run_id=run.id)


def _gate_id(session, project: Project) -> int:
    from core.gate import gate

    return gate.current(session, project_id=project.id).id


def _swap_to_validator(session, demo, project: Project, username: str) -> None:
    projects.remove_role(session, actor=demo["admin"], project=project, username=username, role="driver")
    projects.assign_role(session, actor=demo["admin"], project=project, username=username, role="validator")


def test_a_driver_swapped_to_validator_cannot_judge_what_she_built(session, demo, gated, tmp_path):
    ev = _build(session, data_by=demo["dana"], driver=demo["dana"], project=gated, tmp_path=tmp_path)
    _swap_to_validator(session, demo, gated, "dana")
    assert projects.roles_of(session, project_id=gated.id, user_id=demo["dana"].id) == {"validator"}

    with pytest.raises(SeparationOfDuties, match=rf"training run #{ev.training_run_id}") as refused:
        review.record_verdict(session, actor=demo["dana"], project=gated, evaluation_id=ev.id, item_id="c0",
                              verdict="student-right")
    assert f"evaluation #{ev.id}" in str(refused.value) and "whatever roles they hold now" in str(refused.value)
    with pytest.raises(SeparationOfDuties, match=rf"training run #{ev.training_run_id}"):
        review.sign_off(session, actor=demo["dana"], project=gated, evaluation_id=ev.id, approve=True)
    assert session.exec(select(ReviewVerdict)).all() == [] and session.exec(select(SignOff)).all() == []
    # nothing she signed can unblock a ship
    report = runs.load_report(session, ev)
    assert any("no validator has approved" in b for b in decision.ship_blockers(
        session, project=gated, evaluation=ev, report=report))
    # the page asks core the same question
    assert "training run" in review.review_refusal(session, actor=demo["dana"], project=gated, evaluation_id=ev.id)


def test_whoever_only_imported_the_data_is_refused_naming_the_dataset(session, demo, gated, tmp_path):
    ivy = people.create_user(session, actor=demo["admin"], username="ivy", display_name="Ivy",
                             password="ivy-pass-123456")
    projects.assign_role(session, actor=demo["admin"], project=gated, username="ivy", role="driver")
    ev = _build(session, data_by=ivy, driver=demo["dana"], project=gated, tmp_path=tmp_path)
    _swap_to_validator(session, demo, gated, "ivy")
    with pytest.raises(SeparationOfDuties, match=r"dataset #\d+ \(import\)") as refused:
        review.sign_off(session, actor=ivy, project=gated, evaluation_id=ev.id, approve=False, comment="no")
    assert "training run" not in str(refused.value)  # only what she authored is named


def test_a_validator_who_built_nothing_may_judge(session, demo, gated, tmp_path):
    ev = _build(session, data_by=demo["dana"], driver=demo["dana"], project=gated, tmp_path=tmp_path)
    assert separation.authored_by(session, evaluation=ev, person=demo["val"]) == []
    authors = {e.what.split(" #")[0]: e.author for e in separation.evidence_of(session, evaluation=ev)}
    assert authors["training run"] == authors["teacher run"] == authors["evaluation"] == "dana"
    row = review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=ev.id, item_id="c0",
                                verdict="teacher-right")
    assert row.validator_id == demo["val"].id
    assert review.review_refusal(session, actor=demo["val"], project=gated, evaluation_id=ev.id) is None
