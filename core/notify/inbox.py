"""Recording a notification (``notify``, called by the producers where their event is recorded) and a person's
inbox: their own items only, newest first, each a link to the page that does the work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from core.domain.errors import NotFound
from core.notify import delivery, webhooks
from core.notify.rules import RULES, Kind, Link, link_of, message
from core.store import jobs, vouched
from core.store.models import Job, Notification, Project, RoleAssignment, User, WebhookDelivery, id_of, utcnow


def recipients(session: Session, *, kind: Kind, project_id: int, actor: User | None,
               to: Sequence[int] = ()) -> list[int]:
    """Who ``kind`` is for: the active holders of its roles on the project (roles the audit chain vouches for)
    and anyone the producer names; never the actor."""
    roles = {r.value for r in RULES[kind].roles}
    held = vouched.rows(session, RoleAssignment, RoleAssignment.project_id == project_id) if roles else []
    ids = {r.user_id for r in held if r.role in roles} | set(to)
    ids.discard(actor.id if actor is not None else None)
    return sorted(id_of(u) for u in vouched.rows(session, User, col(User.id).in_(ids)) if u.is_active)


def told(session: Session, *, dedupe: str) -> bool:
    """Whether the state named ``dedupe`` was told before, to a person or a webhook."""
    return any(session.exec(select(model.id).where(model.dedupe_key == dedupe).limit(1)).first() is not None
               for model in (Notification, WebhookDelivery))


def notify(session: Session, *, kind: Kind, project_id: int, actor: User | None, detail: str,
           evaluation_id: int | None = None, to: Sequence[int] = (), job_kind: str | None = None,
           dedupe: str | None = None) -> list[Notification]:
    """Tell everyone ``kind`` is for, in the caller's transaction (the caller commits): one inbox item each and
    one delivery per matching webhook, posted once the transaction commits. With ``dedupe`` (a state someone
    noticed rather than an act) it tells once: nothing is added when that key was told before."""
    if dedupe is not None and told(session, dedupe=dedupe):
        return []
    project = session.get_one(Project, project_id)
    link = link_of(kind, project_id=project_id, evaluation_id=evaluation_id, job_kind=job_kind)
    text = message(kind, project=project.name, actor=actor.username if actor else "", detail=detail,
                   evaluation_id=evaluation_id)
    rows = [Notification(recipient_id=uid, kind=kind.value, project_id=project_id, page=link.page,
                         evaluation_id=evaluation_id, text=text, dedupe_key=dedupe)
            for uid in recipients(session, kind=kind, project_id=project_id, actor=actor, to=to)]
    hooks = webhooks.matching(session, kind=kind, project_id=project_id)
    session.add_all(rows)
    session.add_all([WebhookDelivery(subscription_id=id_of(h), kind=kind.value, project_id=project_id,
                                     page=link.page, evaluation_id=evaluation_id, text=text, dedupe_key=dedupe)
                     for h in hooks])
    session.flush()
    if hooks:
        delivery.wake_after_commit(session)
    return rows


def _tell_submitter(session: Session, job: Job, error: str, failure: int) -> None:
    """A job failed (core.store.jobs.noticed_failure, in the transaction that records it): its submitter is told
    once per failure (``failure``, the id of its audit event), whichever process recorded it: nobody acted, the
    job did."""
    notify(session, kind=Kind.JOB_FAILED, project_id=job.project_id, actor=None, to=[job.created_by],
           job_kind=job.kind, detail=f"{job.kind} job #{job.id}: {error[:300].rstrip('.')}",
           dedupe=f"job:{job.id}:failed:event-{failure}")


jobs.FAILURE_LISTENERS.append(_tell_submitter)


def notice(session: Session, *, kind: Kind, project_id: int, detail: str, dedupe: str) -> list[Notification]:
    """A state Stillroom noticed while reading (a stage ready, drift at alert): told once per ``dedupe`` key and
    committed now, since whoever read it commits nothing. Nobody acted, so nobody is left out."""
    if told(session, dedupe=dedupe):  # the common case, on every read: no write, no commit
        return []
    rows = notify(session, kind=kind, project_id=project_id, actor=None, detail=detail, dedupe=dedupe)
    session.commit()
    return rows


@dataclass(frozen=True)
class InboxItem:
    id: int
    kind: str
    project_id: int
    text: str
    link: Link
    created_at: datetime
    read: bool


def inbox(session: Session, *, viewer: User, unread_only: bool = False, limit: int = 100) -> list[InboxItem]:
    """The viewer's own notifications, newest first."""
    stmt = select(Notification).where(Notification.recipient_id == viewer.id)
    if unread_only:
        stmt = stmt.where(col(Notification.read_at).is_(None))
    rows = session.exec(stmt.order_by(col(Notification.id).desc()).limit(limit)).all()
    return [InboxItem(id_of(n), n.kind, n.project_id, n.text, Link(n.project_id, n.page, n.evaluation_id),
                      n.created_at, n.read_at is not None) for n in rows]


def unread_count(session: Session, *, viewer: User) -> int:
    return session.exec(select(func.count()).select_from(Notification)
                        .where(Notification.recipient_id == viewer.id, col(Notification.read_at).is_(None))).one()


def mark_read(session: Session, *, viewer: User, notification_id: int) -> None:
    """Mark one of the viewer's notifications read; another person's is answered as missing, not as forbidden,
    so an inbox does not tell who else was notified."""
    row = session.get(Notification, notification_id)
    if row is None or row.recipient_id != viewer.id:
        raise NotFound(f"you have no notification #{notification_id}: open your inbox to see yours.",
                       field="notification")
    if row.read_at is None:
        row.read_at = utcnow()
        session.add(row)
    session.commit()


def mark_all_read(session: Session, *, viewer: User) -> int:
    """Mark every unread notification of the viewer read; returns how many."""
    done = session.execute(update(Notification).where(col(Notification.recipient_id) == viewer.id,
                                                      col(Notification.read_at).is_(None))
                           .values(read_at=utcnow()))
    session.commit()
    return int(getattr(done, "rowcount", 0) or 0)
