"""The portfolio: stage in the cadence, roles, and what waits on whom."""

import json

from conftest import good_qualification
from core.access import projects
from core.decision import portfolio
from core.gate import gate
from core.qualify import qualification


def _row(session, user, name):
    return {r.name: r for r in portfolio.portfolio(session, user=user)}[name]


def test_stage_moves_from_qualify_to_gate_to_data(session, demo, moderation):
    sam, dana = demo["sam"], demo["dana"]
    assert (_row(session, sam, moderation.name).stage, _row(session, sam, moderation.name).waiting_on_you) == (
        1, ["Qualify the trigger"])
    qualification.record(session, actor=sam, project=moderation, inputs=good_qualification(), verdict="proceed")
    row = _row(session, sam, moderation.name)
    assert (row.stage, row.stage_name, row.waiting_on_you) == (2, "Lock the success gate", ["Lock the success gate"])
    assert _row(session, dana, moderation.name).waiting_on_you == []
    gate.lock(session, actor=sam, project=moderation, spec=gate.template("cost-pressure"))
    assert _row(session, sam, moderation.name).waiting_on_you == []
    row = _row(session, dana, moderation.name)
    assert (row.stage, row.gate_version, row.waiting_on_you) == (3, 1, ["Import production inputs"])


def test_a_do_nothing_verdict_keeps_the_project_at_step_one(session, demo, moderation):
    qualification.record(session, actor=demo["sam"], project=moderation,
                         inputs=good_qualification(task_scope="broad"), verdict="do-nothing")
    row = _row(session, demo["sam"], moderation.name)
    assert row.stage == 1 and "do-nothing" in row.status


def test_roles_are_listed_and_admin_is_asked_to_fill_missing_ones(session, demo, moderation):
    fresh = projects.create_project(session, actor=demo["admin"], name="Empty")
    projects.assign_role(session, actor=demo["admin"], project=fresh, username="sam", role="sponsor")
    row = _row(session, demo["admin"], "Empty")
    assert row.roles == {"sponsor": ["sam"]}
    assert row.waiting_on_you == ["Assign driver, validator, operator"]
    full = _row(session, demo["admin"], moderation.name)
    assert full.roles == {"sponsor": ["sam"], "driver": ["dana"], "validator": ["val"], "operator": ["oscar"]}


def test_people_see_only_their_projects(session, demo):
    projects.create_project(session, actor=demo["admin"], name="Secret")
    assert "Secret" not in {r.name for r in portfolio.portfolio(session, user=demo["val"])}


def test_the_data_steps_move_the_project_on_and_tell_the_driver_what_is_next(session, demo):
    from data_helpers import import_rows, routing, ticket_rows

    from core.data import holdout

    dana = demo["dana"]
    name = routing(session).name
    assert _row(session, dana, name).waiting_on_you == ["Import production inputs"]
    ds = import_rows(session, dana, ticket_rows(100))
    row = _row(session, dana, name)
    assert (row.stage, row.waiting_on_you) == (3, ["Fix the holdout"])
    holdout.fix_holdout(session, actor=dana, project=routing(session), dataset_id=ds.id, fraction=0.2)
    assert _row(session, dana, name).waiting_on_you == ["Run the teacher"]
    assert "holdout fixed" in _row(session, dana, name).status


def test_evaluation_review_and_decision_move_the_project_to_the_last_step(session, demo, gated, failing_eval):
    from core.decision import decision
    from core.review import review

    name = gated.name
    assert _row(session, demo["val"], name).waiting_on_you == [f"Review evaluation #{failing_eval.id}"]
    assert "awaiting review" in _row(session, demo["sam"], name).status
    review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id, approve=False,
                    comment="the threat slice fails")
    row = _row(session, demo["sam"], name)
    assert (row.stage, row.waiting_on_you) == (5, ["Decide: ship, iterate or kill"])
    decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="more threats",
                    evaluation_id=failing_eval.id)
    row = _row(session, demo["sam"], name)
    assert row.stage == 3 and "round 2" in row.status and row.waiting_on_you == []


def test_a_shipped_project_waits_on_its_operator_to_start_the_rollout(session, demo, gated):
    from monitor_helpers import ship

    from core.rollout import rollout

    ship(session, demo, gated)
    row = _row(session, demo["oscar"], gated.name)
    assert (row.stage, row.waiting_on_you) == (5, ["Start the rollout in shadow"])
    assert "Shipped in round 1; rollout off" in row.status
    rollout.start(session, actor=demo["oscar"], project=gated, reason="go")
    row = _row(session, demo["oscar"], gated.name)
    assert row.waiting_on_you == [] and "rollout in shadow" in row.status


def test_a_rollout_stage_reads_as_a_percentage(session, demo, gated):
    from monitor_helpers import ship, traffic, write_log

    from core.rollout import rollout

    ship(session, demo, gated)
    rollout.start(session, actor=demo["oscar"], project=gated, reason="go")
    write_log(gated.id, traffic(240, stage="shadow"))
    rollout.advance(session, actor=demo["oscar"], project=gated, reason="shadow looks good")
    status = _row(session, demo["oscar"], gated.name).status
    assert status.endswith("rollout at 5 %"), status


def test_the_teacher_is_not_asked_for_while_its_job_is_queued_or_running(session, demo, tmp_path):
    from data_helpers import import_rows, routing, ticket_rows

    from core.data import holdout
    from core.teacher import runs

    dana = demo["dana"]
    project = routing(session)
    ds = import_rows(session, dana, ticket_rows(100))
    holdout.fix_holdout(session, actor=dana, project=project, dataset_id=ds.id, fraction=0.2)
    labels = sorted({r["label"] for r in ticket_rows(100)})  # a queued job needs a model folder, not a model
    (tmp_path / "config.json").write_text(json.dumps({"id2label": dict(enumerate(labels))}), encoding="utf-8")
    job = runs.start_run(session, actor=dana, project=project, dataset_id=ds.id, adapter="local",
                         config={"model_dir": str(tmp_path), "batch_size": 16})
    row = _row(session, dana, project.name)
    assert row.waiting_on_you == [] and "the teacher is running" in row.status
    job.status = "running"
    session.add(job)
    session.commit()
    assert _row(session, dana, project.name).waiting_on_you == []
    job.status = "failed"  # a failed run waits on the driver again
    session.add(job)
    session.commit()
    assert _row(session, dana, project.name).waiting_on_you == ["Run the teacher"]
