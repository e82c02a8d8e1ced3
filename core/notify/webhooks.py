"""The admin's webhook subscriptions. A URL is accepted only when it is on STILLROOM_WEBHOOK_URLS (the rule of
the teacher's endpoints, core.domain.urls), checked when it is added and again before every send, so a URL the
admin later takes off the list receives nothing more. A webhook URL often is its own secret (Slack's path), so it
is shown, logged and audited only as ``shown``: scheme, host and a fingerprint of the whole URL. The database keeps
only the URL's SHA-256: the sender finds the URL itself on the server's list (``listed``), so a copy of the
database, a backup or a reader with SQL access learns no webhook secret."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from core.access.people import require_admin
from core.domain.errors import GovernanceViolation, NotFound
from core.domain.hashing import sha256_hex
from core.domain.urls import public_url, refusal
from core.notify.rules import Kind, parse_kind
from core.store import audit
from core.store.config import get_settings
from core.store.models import Project, User, WebhookDelivery, WebhookSubscription, id_of, utcnow


def shown(url: str) -> str:
    """What a webhook URL may be shown as: its scheme and host, and a fingerprint to tell two apart."""
    parts = urlsplit(url.strip())
    host = parts.hostname or "?"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}/… #{sha256_hex(url.strip())[:8]}"


def check_url(url: str) -> str:
    """The URL as STILLROOM_WEBHOOK_URLS lists it (stripped), or GovernanceViolation unless ``url`` is an http(s)
    URL on that list. The sentence names the URL only as ``shown`` and never lists the allowed URLs: each may carry
    a secret."""
    url = (url or "").strip()
    if urlsplit(url).scheme not in ("http", "https"):
        raise GovernanceViolation(f"the webhook URL {shown(url)} is not http or https: give the full URL the "
                                  "receiving service issued.")
    allowed = get_settings().webhook_urls
    why = refusal(url, allowed)
    if why is not None:
        raise GovernanceViolation(f"the webhook URL {shown(url)} {why.value} (STILLROOM_WEBHOOK_URLS): give it "
                                  "exactly as listed, or ask whoever runs the server to list it.")
    return next(u.strip() for u in allowed if public_url(u) == public_url(url))


def listed(url_sha256: str) -> str | None:
    """The URL on STILLROOM_WEBHOOK_URLS whose SHA-256 is ``url_sha256``, checked as ``check_url`` checks it;
    None when the admin has taken it off the list (or it never was on this server's)."""
    for url in get_settings().webhook_urls:
        if sha256_hex(url.strip()) == url_sha256:
            try:
                return check_url(url)
            except GovernanceViolation:
                return None
    return None


@dataclass(frozen=True)
class Subscription:
    """A subscription as the admin sees it: never the URL itself."""

    id: int
    shown: str
    kinds: tuple[str, ...]
    project_id: int | None
    created_at: datetime
    delivered: int
    failed: int
    pending: int


def add(session: Session, *, actor: User, url: str, kinds: Sequence[str] = (),
        project: Project | None = None) -> WebhookSubscription:
    """Subscribe ``url`` to ``kinds`` (none: every kind) of one project's events, or every project's."""
    require_admin(actor)
    url = check_url(url)
    chosen = sorted({parse_kind(k).value for k in kinds}) or [k.value for k in Kind]
    row = WebhookSubscription(url_sha256=sha256_hex(url), shown=shown(url), kinds=chosen, created_by=id_of(actor),
                              project_id=id_of(project) if project is not None else None)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="webhook.add", entity="webhook", entity_id=row.id,
                 project_id=row.project_id, payload={"url": row.shown, "url_sha256": row.url_sha256,
                                                     "kinds": chosen})
    session.commit()
    return row


def remove(session: Session, *, actor: User, subscription_id: int) -> WebhookSubscription:
    """Stop a subscription (its row and its delivery log stay); its pending deliveries are not sent."""
    require_admin(actor)
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.removed_at is not None:
        raise NotFound(f"no webhook subscription #{subscription_id}: list them with `stillroom webhooks list`.",
                       field="subscription")
    row.removed_at, row.removed_by = utcnow(), id_of(actor)
    session.add(row)
    audit.record(session, actor=actor, action="webhook.remove", entity="webhook", entity_id=row.id,
                 project_id=row.project_id, payload={"url": row.shown})
    session.commit()
    return row


def subscriptions(session: Session, *, actor: User) -> list[Subscription]:
    """The active subscriptions with how their deliveries went (admins only)."""
    require_admin(actor)
    rows = session.exec(select(WebhookSubscription).where(col(WebhookSubscription.removed_at).is_(None))
                        .order_by(col(WebhookSubscription.id))).all()
    out = []
    for r in rows:
        states = list(session.exec(select(WebhookDelivery.status)
                                   .where(WebhookDelivery.subscription_id == id_of(r))).all())
        out.append(Subscription(id_of(r), r.shown, tuple(r.kinds), r.project_id, r.created_at,
                                states.count("delivered"), states.count("failed"), states.count("pending")))
    return out


def matching(session: Session, *, kind: Kind, project_id: int) -> list[WebhookSubscription]:
    """The active subscriptions that hear about ``kind`` on this project."""
    rows = session.exec(select(WebhookSubscription).where(col(WebhookSubscription.removed_at).is_(None))).all()
    return [r for r in rows if kind.value in r.kinds and r.project_id in (None, project_id)]
