"""Posting webhooks: a delivery row is the outbox (written in the same transaction as the event), a sender
thread posts what is due, and every try is logged (status code or a fixed sentence; never the body, never the
URL). A failed try is retried after ``webhook_backoff_s``, doubling each time, up to ``webhook_max_attempts``;
a 4xx other than 408/409/425/429 is final. Tries are claimed with one conditional UPDATE, so two processes
never post the same try; one that dies mid-try leaves it due again after a lease.

A thread, not a job: a job is a project's, submitted by a person and run in their name, while a delivery is
nobody's work and must not wait for anyone to start it. Each process that records an event wakes its own
sender; at exit it makes one pass over what is due, and what is left (a retry) is sent by the next sender
that wakes or polls (the app's, or ``stillroom webhooks deliver``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import event, func, update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from core.domain.urls import RETRY_STATUS
from core.notify.rules import Kind, link_of
from core.notify.webhooks import listed
from core.store.config import get_settings
from core.store.db import get_engine
from core.store.models import WebhookAttempt, WebhookDelivery, WebhookSubscription, utcnow

log = logging.getLogger(__name__)
POLL_S = 30.0  # a sender looks for deliveries other processes left at least this often
LEASE = timedelta(seconds=90)  # a claimed try whose process died is due again after this


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str  # a fixed sentence: never the receiver's body, never the URL
    delivered: bool
    retry: bool


def mrkdwn(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally (its three control characters escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(delivery: WebhookDelivery) -> dict[str, Any]:
    """The Slack-compatible message: ``text`` for clients that read only that, ``blocks`` with a link back."""
    link = link_of(Kind(delivery.kind), project_id=delivery.project_id, evaluation_id=delivery.evaluation_id)
    url = link.absolute(get_settings().app_url)
    shown = mrkdwn(delivery.text) + (f"\n<{url}|Open in Stillroom>" if url else "")
    return {"text": delivery.text + (f" {url}" if url else ""),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": shown}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": f"stillroom · {delivery.kind}"}]}]}


def post(url: str, payload: dict[str, Any]) -> Outcome:
    """One POST. Redirects are not followed: the URL on the admin's list is the only place a body goes."""
    timeout = get_settings().webhook_timeout_s
    try:
        code = httpx.post(url, json=payload, timeout=timeout, follow_redirects=False).status_code
    except httpx.TimeoutException:
        return Outcome(None, f"no answer within {timeout:g} s", False, True)
    except httpx.HTTPError as exc:  # the exception's text may name the URL: only its type is kept
        return Outcome(None, f"the connection failed ({type(exc).__name__})", False, True)
    if 200 <= code < 300:
        return Outcome(code, "", True, False)
    return Outcome(code, f"the receiver answered HTTP {code}", False, code in RETRY_STATUS or code >= 500)


def _claim_next(engine: Engine, now: datetime) -> tuple[WebhookDelivery, WebhookSubscription] | None:
    """The next due delivery, claimed for this try (its next_attempt_at pushed past the lease), or None."""
    with Session(engine, expire_on_commit=False) as s:
        while True:
            due = s.exec(select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                                       col(WebhookDelivery.next_attempt_at) <= now)
                         .order_by(col(WebhookDelivery.next_attempt_at)).limit(1)).first()
            if due is None:
                return None
            claimed = cast(CursorResult[Any], s.execute(  # an UPDATE's result is a cursor's, with its row count
                update(WebhookDelivery).where(col(WebhookDelivery.id) == due.id,
                                              col(WebhookDelivery.status) == "pending",
                                              col(WebhookDelivery.next_attempt_at) <= now)
                .values(next_attempt_at=now + LEASE))).rowcount
            s.commit()
            if claimed == 1:
                return due, s.get_one(WebhookSubscription, due.subscription_id)


def _try(delivery: WebhookDelivery, subscription: WebhookSubscription) -> tuple[Outcome, float]:
    """Post once, unless the subscription was removed or its URL left the list meanwhile (final, not sent)."""
    if subscription.removed_at is not None:
        return Outcome(None, "not sent: the subscription was removed", False, False), 0.0
    url = listed(subscription.url_sha256)
    if url is None:
        return Outcome(None, "not sent: the URL is no longer on STILLROOM_WEBHOOK_URLS", False, False), 0.0
    start = time.perf_counter()
    outcome = post(url, body(delivery))
    return outcome, (time.perf_counter() - start) * 1000


def _log(engine: Engine, delivery_id: int, outcome: Outcome, duration_ms: float) -> None:
    """Append the try to the log and move the delivery on: delivered, failed, or due again after the backoff."""
    settings = get_settings()
    with Session(engine) as s:
        d = s.get_one(WebhookDelivery, delivery_id)
        d.attempts += 1
        s.add(WebhookAttempt(delivery_id=delivery_id, attempt=d.attempts, status_code=outcome.status_code,
                             error=outcome.error, duration_ms=round(duration_ms, 2)))
        d.last_status_code, d.last_error = outcome.status_code, outcome.error
        if outcome.delivered or not outcome.retry or d.attempts >= settings.webhook_max_attempts:
            d.status, d.finished_at = ("delivered" if outcome.delivered else "failed"), utcnow()
        else:
            d.next_attempt_at = utcnow() + timedelta(seconds=settings.webhook_backoff_s * 2 ** (d.attempts - 1))
        s.add(d)
        s.commit()


def deliver_due(engine: Engine) -> int:
    """Make every try that is due now; returns how many were made."""
    made = 0
    while (claimed := _claim_next(engine, utcnow())) is not None:
        delivery, subscription = claimed
        outcome, ms = _try(delivery, subscription)
        _log(engine, cast(int, delivery.id), outcome, ms)
        made += 1
    return made


def next_due_in(engine: Engine) -> float | None:
    """Seconds until the next pending try is due (0 if one is due now), None when nothing is pending."""
    with Session(engine) as s:
        first = s.exec(select(func.min(WebhookDelivery.next_attempt_at))
                       .where(WebhookDelivery.status == "pending")).one()
    if first is None:
        return None
    first = first if first.tzinfo else first.replace(tzinfo=utcnow().tzinfo)
    return max((first - utcnow()).total_seconds(), 0.0)


def pending_count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(WebhookDelivery)
                      .where(WebhookDelivery.status == "pending")).one()


def drain(engine: Engine, *, timeout_s: float) -> int:
    """Deliver until nothing is pending or ``timeout_s`` passed, waiting out the backoffs; returns tries made."""
    deadline, made = time.monotonic() + timeout_s, 0
    while True:
        made += deliver_due(engine)
        wait = next_due_in(engine)
        if wait is None or time.monotonic() + wait > deadline:
            return made
        time.sleep(wait)


# --------------------------------------------------------------------------- the sender thread


class Sender(threading.Thread):
    """This process's sender for one database: posts what is due, sleeps until the next try or a wake."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="stillroom-webhooks", daemon=True)
        self.engine, self.woken, self.stopping = engine, threading.Event(), False
        self.busy = threading.Lock()  # held while trying: the exit pass waits for a try in flight

    def run(self) -> None:
        while not self.stopping:
            self.woken.clear()
            try:
                with self.busy:
                    deliver_due(self.engine)
                wait = next_due_in(self.engine)
            except Exception as exc:  # noqa: BLE001 (the database went away: this sender stops, rows stay pending)
                log.warning("webhook sender stopped: %s", type(exc).__name__)
                return
            self.woken.wait(POLL_S if wait is None else min(wait, POLL_S))


_senders: dict[str, Sender] = {}
_lock = threading.Lock()


def wake(engine: Engine) -> None:
    """Start this process's sender for ``engine`` if it is not running, and have it look now."""
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        sender = _senders.get(key)
        if sender is None or not sender.is_alive():
            if not _senders:
                atexit.register(_last_pass)
            sender = _senders[key] = Sender(engine)
            sender.start()
    sender.woken.set()


def resume(url: str) -> bool:
    """Start this process's sender for the database at ``url`` when it has a webhook, so that tries other
    processes left pending (a job's process that exited before its retry) are made without waiting for a new
    event here. The app calls it once per server and database."""
    engine = get_engine(url)
    with Session(engine) as s:
        if s.exec(select(WebhookSubscription.id).where(col(WebhookSubscription.removed_at).is_(None))).first() is None:
            return False
    wake(engine)
    return True


def stop_all() -> None:
    """Stop this process's senders (their pending rows stay for the next sender): for tests that drop their
    database afterwards."""
    with _lock:
        for sender in _senders.values():
            sender.stopping = True
            sender.woken.set()
        _senders.clear()


def wake_after_commit(session: Session) -> None:
    """Wake the sender once the caller's transaction commits (the delivery rows are then visible to it)."""
    engine = session.get_bind()
    event.listen(session, "after_commit", lambda _s: wake(cast(Engine, engine)), once=True)


def _last_pass() -> None:
    """At exit, one pass over what is due, so a short CLI process does not leave its first tries unsent; a try in
    flight is waited for (up to its timeout), not cut off, so the receiver is not sent it twice."""
    for sender in list(_senders.values()):
        if not sender.busy.acquire(timeout=get_settings().webhook_timeout_s + 1):
            continue
        try:
            deliver_due(sender.engine)
        except Exception as exc:  # noqa: BLE001 (exiting: say so and leave the rows pending)
            log.warning("webhook deliveries left pending at exit: %s", type(exc).__name__)
        finally:
            sender.busy.release()
