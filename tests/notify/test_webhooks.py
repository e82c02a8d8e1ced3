"""Webhooks reach a real local receiver: when an evaluation becomes ready for review, retried with backoff when
the receiver fails (every try logged, never a body), and never to a URL off the admin's allow-list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from eval_helpers import gated_routing
from notify_helpers import SECRET_PATH, wait_until
from sqlmodel import select

from core.access import projects
from core.data.holdout import holdout_rows
from core.domain.errors import GovernanceViolation, PermissionDenied
from core.evaluation import imports
from core.notify import delivery, inbox, webhooks
from core.notify.rules import Kind
from core.store import config
from core.store.models import AuditEvent, Notification, WebhookAttempt, WebhookDelivery, WebhookSubscription

REPO = Path(__file__).resolve().parents[2]


def _deliveries(session) -> list[WebhookDelivery]:
    session.expire_all()
    return list(session.exec(select(WebhookDelivery)).all())


def _attempts(session, delivery_id: int) -> list[WebhookAttempt]:
    session.expire_all()
    return list(session.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
                             .order_by(WebhookAttempt.attempt)).all())


def _signoff_event(session, demo, project) -> None:
    """An event with a webhook delivery, recorded and committed as a producer does."""
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=project.id, actor=demo["val"], evaluation_id=None,
                 detail="approved")
    session.commit()


@pytest.fixture
def routing(session, demo, tmp_path):
    return gated_routing(session, demo=demo, tmp_path=tmp_path)


def test_a_webhook_reaches_a_local_receiver_when_an_evaluation_becomes_ready_for_review(
        session, demo, routing, receiver, tmp_path):
    webhooks.add(session, actor=demo["admin"], url=receiver.url, kinds=[Kind.EVALUATION_READY.value])
    held = holdout_rows(session, project_id=routing.id)
    path = tmp_path / "preds.csv"
    pd.DataFrame({"id": held["id"], "student": held["queue"]}).to_csv(path, index=False)

    ev = imports.import_predictions(session, actor=demo["dana"], project=routing, path=path, kind="label")

    posts = receiver.wait_for(1)
    assert len(posts) == 1 and posts[0]["path"] == SECRET_PATH
    body = posts[0]["json"]
    assert posts[0]["content_type"] == "application/json"
    assert f"Evaluation #{ev.id} of Support ticket routing is ready for your review" in body["text"]
    link = f"https://stillroom.example/review?project={routing.id}&evaluation={ev.id}"
    assert link in body["text"] and f"<{link}|Open in Stillroom>" in body["blocks"][0]["text"]["text"]
    assert body["blocks"][0]["type"] == "section" and body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert wait_until(lambda: _deliveries(session)[0].status == "delivered")
    assert [a.status_code for a in _attempts(session, _deliveries(session)[0].id)] == [200]
    # The validator's inbox has it too; the driver who recorded the evaluation is not told of her own act.
    assert [i.text for i in inbox.inbox(session, viewer=demo["val"])] == [body["text"].rsplit(" https", 1)[0]]
    assert inbox.inbox(session, viewer=demo["dana"]) == []


def test_a_failing_receiver_is_retried_with_backoff_and_every_try_is_logged(session, demo, moderation, receiver):
    receiver.statuses = [500]
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    _signoff_event(session, demo, moderation)

    assert len(receiver.wait_for(3)) == 3
    assert wait_until(lambda: _deliveries(session)[0].status == "failed")
    (d,) = _deliveries(session)
    tries = _attempts(session, d.id)
    assert [(a.attempt, a.status_code) for a in tries] == [(1, 500), (2, 500), (3, 500)]
    assert all(a.error == "the receiver answered HTTP 500" for a in tries)  # a fixed sentence, not the body
    assert d.attempts == 3 and d.last_status_code == 500
    gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9  # 0.2 s, then doubled
    assert len(receiver.posts) == 3  # the last try is the last: nothing more comes


def test_a_receiver_that_recovers_gets_the_message_once(session, demo, moderation, receiver):
    receiver.statuses = [503, 200]
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    _signoff_event(session, demo, moderation)

    assert wait_until(lambda: _deliveries(session)[0].status == "delivered")
    assert [a.status_code for a in _attempts(session, _deliveries(session)[0].id)] == [503, 200]
    assert len(receiver.posts) == 2


def test_a_client_error_is_final(session, demo, moderation, receiver):
    receiver.statuses = [404]
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    _signoff_event(session, demo, moderation)

    assert wait_until(lambda: _deliveries(session)[0].status == "failed")
    assert [a.status_code for a in _attempts(session, _deliveries(session)[0].id)] == [404]


def test_a_url_off_the_allow_list_is_refused_at_creation_without_echoing_a_secret(session, demo, receiver):
    other = receiver.url.replace("s3cr3t", "other")
    with pytest.raises(GovernanceViolation) as refused:
        webhooks.add(session, actor=demo["admin"], url=other)
    assert "STILLROOM_WEBHOOK_URLS" in str(refused.value)
    assert "t0k3n" not in str(refused.value) and "s3cr3t" not in str(refused.value)  # neither URL is echoed
    with pytest.raises(GovernanceViolation, match="user info, a query or a fragment"):
        webhooks.add(session, actor=demo["admin"], url=receiver.url + "?token=x")
    with pytest.raises(GovernanceViolation, match="not http or https"):
        webhooks.add(session, actor=demo["admin"], url="file:///etc/passwd")
    assert session.exec(select(WebhookSubscription)).all() == []


def test_a_url_taken_off_the_list_is_not_sent_to(session, demo, moderation, receiver, monkeypatch):
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    monkeypatch.setenv("STILLROOM_WEBHOOK_URLS", "https://hooks.example.com/other")
    config.get_settings.cache_clear()
    _signoff_event(session, demo, moderation)

    assert wait_until(lambda: _deliveries(session)[0].status == "failed")
    (d,) = _deliveries(session)
    assert [(a.status_code, a.error) for a in _attempts(session, d.id)] == [
        (None, "not sent: the URL is no longer on STILLROOM_WEBHOOK_URLS")]
    assert receiver.posts == []


def test_the_url_secret_never_reaches_the_audit_log_or_the_lists(session, demo, moderation, receiver):
    receiver.statuses = [500, 200]
    row = webhooks.add(session, actor=demo["admin"], url=receiver.url)
    _signoff_event(session, demo, moderation)
    assert wait_until(lambda: _deliveries(session)[0].status == "delivered")
    webhooks.remove(session, actor=demo["admin"], subscription_id=row.id)

    secret = "s3cr3t-t0k3n"
    events = session.exec(select(AuditEvent).where(AuditEvent.entity == "webhook")).all()
    assert [e.action for e in events] == ["webhook.add", "webhook.remove"]
    assert all(secret not in e.payload for e in events)
    assert all(secret not in a.error for a in session.exec(select(WebhookAttempt)).all())
    assert secret not in row.shown and row.shown.startswith("http://127.0.0.1:")


def test_only_an_admin_manages_webhooks(session, demo, receiver):
    with pytest.raises(PermissionDenied):
        webhooks.add(session, actor=demo["oscar"], url=receiver.url)
    with pytest.raises(PermissionDenied):
        webhooks.subscriptions(session, actor=demo["oscar"])


def test_a_subscription_hears_only_its_kinds_and_project(session, demo, moderation, receiver):
    routing = projects.get_project(session, "Support ticket routing")
    webhooks.add(session, actor=demo["admin"], url=receiver.url, kinds=[Kind.DECISION.value], project=routing)
    _signoff_event(session, demo, routing)  # another kind
    inbox.notify(session, kind=Kind.DECISION, project_id=moderation.id, actor=demo["sam"], detail="kill")
    session.commit()  # another project
    assert _deliveries(session) == []
    inbox.notify(session, kind=Kind.DECISION, project_id=routing.id, actor=demo["sam"], detail="kill")
    session.commit()
    assert len(receiver.wait_for(1)) == 1


def test_nothing_is_posted_when_the_event_is_rolled_back(session, demo, moderation, receiver):
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"], detail="approved")
    session.rollback()
    assert delivery.deliver_due(session.get_bind()) == 0
    assert receiver.posts == [] and session.exec(select(Notification)).all() == []


def test_the_app_resumes_deliveries_another_process_left_pending(session, demo, moderation, receiver, db_url):
    sub = webhooks.add(session, actor=demo["admin"], url=receiver.url)
    # As a process that exited before its sender ran would leave it: a committed, pending delivery.
    session.add(WebhookDelivery(subscription_id=sub.id, kind=Kind.DECISION.value, project_id=moderation.id,
                                page="record", text="sam decided kill in round 1 for Comment moderation."))
    session.commit()
    assert delivery.resume(db_url) is True
    assert receiver.wait_for(1)[0]["json"]["text"].startswith("sam decided kill")


def test_without_a_webhook_the_app_starts_no_sender(session, demo, db_url):
    assert delivery.resume(db_url) is False


def test_a_short_lived_process_posts_before_it_exits(session, demo, moderation, receiver):
    """A CLI command records its event and exits at once: its exit pass still makes the first try, once."""
    webhooks.add(session, actor=demo["admin"], url=receiver.url)
    code = ("from sqlmodel import Session\n"
            "from core.access import people, projects\n"
            "from core.notify import inbox\n"
            "from core.notify.rules import Kind\n"
            "from core.store.db import get_engine\n"
            "with Session(get_engine()) as s:\n"
            "    p = projects.get_project(s, 'Comment moderation')\n"
            "    inbox.notify(s, kind=Kind.SIGNOFF, project_id=p.id, actor=people.get_user(s, 'val'), detail='ok')\n"
            "    s.commit()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    assert len(receiver.posts) == 1  # already there when the process has exited
    (d,) = _deliveries(session)
    assert (d.status, d.attempts) == ("delivered", 1)
