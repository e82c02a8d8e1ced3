"""Who is told: the roles an event concerns, never the actor; each person sees and marks only their own items;
a state noticed while reading (a rollout stage ready or refused, drift at alert) is told once."""

from __future__ import annotations

import pytest
from monitor_helpers import live_like, ship, traffic, write_log
from review_helpers import approve
from sqlmodel import select

from core.access import people, projects
from core.decision import decision
from core.domain.errors import GovernanceViolation, NotFound
from core.evaluation.runs import load_predictions
from core.notify import inbox
from core.notify.rules import Kind, Link
from core.rollout import drift, rollout
from core.store.models import Notification


def _texts(session, user) -> list[str]:
    return [i.text for i in inbox.inbox(session, viewer=user)]


def _kinds(session, user) -> list[str]:
    return [i.kind for i in inbox.inbox(session, viewer=user)]


def test_a_sign_off_tells_the_sponsor_and_not_the_validator_who_signed(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    assert _texts(session, demo["sam"]) == [
        f"val approved evaluation #{passing_eval.id} of Comment moderation: the decision is yours."]
    (item,) = inbox.inbox(session, viewer=demo["sam"])
    assert item.link == Link(gated.id, "decide", passing_eval.id)
    assert item.link.query == f"decide?project={gated.id}&evaluation={passing_eval.id}"  # the app's deep link
    assert Kind.SIGNOFF.value not in _kinds(session, demo["val"])
    assert _texts(session, demo["dana"]) == _texts(session, demo["oscar"]) == []


def test_a_decision_tells_driver_and_operator_not_the_sponsor(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                    evaluation_id=passing_eval.id)
    for person in ("dana", "oscar"):
        assert _kinds(session, demo[person])[0] == Kind.DECISION.value
        assert _texts(session, demo[person])[0] == "sam decided ship in round 1 for Comment moderation."
    assert Kind.DECISION.value not in _kinds(session, demo["sam"])


def test_the_actor_is_left_out_even_when_they_hold_the_role(session, demo, moderation):
    projects.assign_role(session, actor=demo["admin"], project=moderation, username="oscar", role="sponsor")
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["oscar"], detail="approved")
    session.commit()
    assert _texts(session, demo["oscar"]) == []
    assert len(_texts(session, demo["sam"])) == 1


def test_a_deactivated_person_is_not_told(session, demo, moderation):
    people.set_active(session, actor=demo["admin"], username="sam", active=False)
    assert inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"],
                        detail="approved") == []


def test_the_inbox_is_the_persons_own_newest_first_and_only_they_mark_it(session, demo, moderation):
    for n in (1, 2):
        inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"], detail=f"#{n}")
    session.commit()
    mine = inbox.inbox(session, viewer=demo["sam"])
    assert [i.text.split(" ")[1] for i in mine] == ["#2", "#1"] and inbox.unread_count(session, viewer=demo["sam"]) == 2
    assert inbox.inbox(session, viewer=demo["dana"]) == []

    with pytest.raises(NotFound, match=f"you have no notification #{mine[0].id}"):
        inbox.mark_read(session, viewer=demo["dana"], notification_id=mine[0].id)
    assert inbox.mark_all_read(session, viewer=demo["dana"]) == 0
    assert inbox.unread_count(session, viewer=demo["sam"]) == 2  # the other account changed nothing

    inbox.mark_read(session, viewer=demo["sam"], notification_id=mine[0].id)
    assert [i.read for i in inbox.inbox(session, viewer=demo["sam"])] == [True, False]
    assert [i.id for i in inbox.inbox(session, viewer=demo["sam"], unread_only=True)] == [mine[1].id]
    assert inbox.mark_all_read(session, viewer=demo["sam"]) == 1
    assert inbox.unread_count(session, viewer=demo["sam"]) == 0


def test_a_failed_job_tells_its_submitter(session, demo, moderation):
    inbox.notify(session, kind=Kind.JOB_FAILED, project_id=moderation.id, actor=None, to=[demo["dana"].id],
                 job_kind="train", detail="train job #4: out of memory")
    session.commit()
    (item,) = inbox.inbox(session, viewer=demo["dana"])
    assert item.text == "Your job on Comment moderation failed: train job #4: out of memory."
    assert item.link.page == "train"
    assert _texts(session, demo["sam"]) == _texts(session, demo["val"]) == []


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def test_a_rollout_stage_ready_is_told_to_the_operators_once(session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(50, stage="shadow"))
    rollout.check_advance(session, project_id=shipped.id)  # still waiting for traffic: nothing to tell
    assert Kind.ROLLOUT_READY.value not in _kinds(session, demo["oscar"])
    write_log(shipped.id, traffic(240, stage="shadow"))
    for _ in range(2):
        rollout.check_advance(session, project_id=shipped.id)
    ready = [i for i in inbox.inbox(session, viewer=demo["oscar"]) if i.kind == Kind.ROLLOUT_READY.value]
    assert [i.text for i in ready] == ["The rollout of Comment moderation at shadow (290 requests) meets every "
                                       "criterion: advance it when ready."]
    assert ready[0].link.page == "operate"


def test_an_advance_refused_by_failing_traffic_is_told_once(session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped)
    write_log(shipped.id, traffic(250, stage="shadow", disagree_every=5))
    for _ in range(2):
        with pytest.raises(GovernanceViolation, match="refused"):
            rollout.advance(session, actor=demo["oscar"], project=shipped)
    refused = [i.text for i in inbox.inbox(session, viewer=demo["oscar"]) if i.kind == Kind.ROLLOUT_REFUSED.value]
    assert len(refused) == 1 and "student-teacher agreement 0.8 vs 0.95" in refused[0]


def test_each_rollout_step_tells_sponsor_and_driver_with_the_reason_never_the_operator_who_took_it(
        session, demo, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped, reason="first live traffic")
    rollout.rollback(session, actor=demo["oscar"], project=shipped, reason="the fallback queue is backed up")
    for person in ("sam", "dana"):
        moved = [i.text for i in inbox.inbox(session, viewer=demo[person]) if i.kind == Kind.ROLLOUT_MOVED.value]
        assert moved == ["oscar rolled back the rollout of Comment moderation from shadow to off (reason: the "
                         "fallback queue is backed up).",
                         "oscar started the rollout of Comment moderation in shadow (reason: first live traffic)."]
    assert Kind.ROLLOUT_MOVED.value not in _kinds(session, demo["oscar"])


def test_drift_at_alert_is_told_to_operators_and_drivers_once(session, demo, shipped):
    predictions = load_predictions(session, drift.shipped_evaluation(session, project_id=shipped.id))
    write_log(shipped.id, live_like(predictions, n=400))
    for _ in range(2):
        assert drift.drift_report(session, project_id=shipped.id).status == "alert"
    for person in ("oscar", "dana"):
        alerts = [i.text for i in inbox.inbox(session, viewer=demo[person]) if i.kind == Kind.DRIFT_ALERT.value]
        assert len(alerts) == 1 and "slice:category PSI" in alerts[0]
    told = session.exec(select(Notification).where(Notification.kind == Kind.DRIFT_ALERT.value)).all()
    assert {n.recipient_id for n in told} == {demo["oscar"].id, demo["dana"].id}



def test_a_job_whose_process_died_tells_its_submitter_once_however_many_notice(engine, session, demo, moderation):
    """Nobody's process is left to say it failed: the reader that notices the death tells the submitter, once."""
    import subprocess
    import sys
    from datetime import timedelta

    import worker_helpers as wh
    from sqlalchemy import update
    from sqlmodel import col

    from core.store import jobs
    from core.store.models import Job, utcnow

    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    session.execute(update(Job).where(col(Job.id) == job.id).values(
        status="running", pid=int(gone.stdout), heartbeat_at=utcnow() - timedelta(hours=1)))
    session.commit()
    for _ in range(2):
        assert jobs.get(session, job.id).status == "failed"
    failed = [i for i in inbox.inbox(session, viewer=demo["dana"]) if i.kind == Kind.JOB_FAILED.value]
    assert [i.text for i in failed] == [f"Your job on Comment moderation failed: {wh.KIND} job #{job.id}: The job's "
                                        "process stopped before it finished: run it again to resume."]
    assert _texts(session, demo["sam"]) == []
