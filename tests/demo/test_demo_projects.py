"""The demo's seeded projects: one waiting on its validator, one shipped at 5 % with traffic the real router logged,
so every role has work on first view; seeding is idempotent and leaves the audit chain intact."""

from __future__ import annotations

from sqlmodel import select

from core.access import people, projects
from core.decision import portfolio
from core.demo import projects as demo_projects
from core.evaluation import runs as evaluations
from core.rollout import logs, rollout
from core.store import verification
from core.store.models import Evaluation, SignOff


def test_every_role_has_work_on_first_view_and_the_router_wrote_the_traffic(session, engine, demo):
    shown = demo_projects.seed(session, engine)
    assert shown is not None and shown.stage == "5"

    review = projects.get_project(session, demo_projects.REVIEW)
    pending = evaluations.get_evaluation(session, project=review, evaluation_id=shown.review_evaluation)
    assert pending.source == "trained" and pending.training_run_id is not None
    assert session.exec(select(SignOff).where(SignOff.evaluation_id == pending.id)).first() is None
    val = people.get_user(session, "val")
    waiting = {r.name: r.waiting_on_you for r in portfolio.portfolio(session, user=val)}
    assert waiting[demo_projects.REVIEW], "the validator has the mid-review evaluation waiting"

    shipped = projects.get_project(session, demo_projects.SHIPPED)
    assert rollout.current_stage(session, project_id=shipped.id) == "5"
    traffic = logs.read_requests(shipped.id)
    assert len(traffic) == shown.requests == demo_projects.SHADOW_REQUESTS + demo_projects.STAGE_REQUESTS
    assert set(traffic["stage"]) == {"shadow", "5"}
    at_five = traffic[traffic["stage"] == "5"]
    # The router's own decisions: most requests fall outside the 5 % and go to the teacher, some to the student.
    assert {"not-in-percentage"} <= set(at_five["reason"]) and (at_five["served_by"] == "student").any()
    check = rollout.check_advance(session, project_id=shipped.id)
    assert check.stage == "5" and check.n_requests == demo_projects.STAGE_REQUESTS
    ev = session.get(Evaluation, shown.shipped_evaluation)
    assert ev.passed and ev.project_id == shipped.id

    assert verification.verify_chain(engine).ok
    assert demo_projects.seed(session, engine) is None  # the second run adds nothing
