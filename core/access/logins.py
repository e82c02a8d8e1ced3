"""Browser logins that survive a refresh (issue 19).

After a password check the app opens a login: a row in ``login_session`` and a one-time code that the page
hands to the web server's cookie route (``web.py``), which swaps it, once and within ``CODE_TTL_S``, for a random
token set as a signed, expiring, HttpOnly cookie. On a fresh page load the app reads the cookie back and
``resume`` says who it is. Only SHA-256 digests of the code and the token are stored; the signature
(HMAC-SHA256 with ``STILLROOM_SESSION_SECRET``, else a random key kept in the data directory) refuses a made-up
value before the database is asked. Logging out ends one login; a password reset or a deactivation ends every
login of the account (``end_all``), and the account's session epoch must still match; a login unused
for ``session_idle_minutes`` ends too, across refreshes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlmodel import Session, col, select, update

from core.domain.errors import AuthenticationFailed
from core.domain.hashing import token_hash
from core.store import vouched
from core.store.config import get_settings
from core.store.models import LoginSession, User, id_of, utcnow

COOKIE_NAME = "stillroom_login"
SEEN_EVERY_S = 60  # how stale a login's seen_at may get (the idle limit is in minutes)
CODE_TTL_S = 60  # the page claims its cookie at once; a code left unclaimed is useless after this
_SIGNED = "stillroom-login:"  # the HMAC covers this prefix too, so a signature of another kind never fits


@dataclass(frozen=True)
class SessionCheck:
    """Whether a browser session may go on; ``reason`` is the sentence shown when it may not."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class LoginOpened:
    """A login just opened: its id (the app keeps it for the script runs of this tab) and the one-time code
    that claims its cookie."""

    login_id: int
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginCookie:
    """What the cookie route sets: the signed value and its lifetime in seconds."""

    value: str
    max_age_s: int


@dataclass(frozen=True)
class Resumed:
    """Who a cookie logs in (``user`` and ``login_id``), or why it logs in nobody (``reason``, empty when the
    value was never a login of ours)."""

    user: User | None = None
    login_id: int | None = None
    reason: str = ""


@cache
def _file_secret(path: Path) -> bytes:
    """A random signing key kept beside the data, made once with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def _secret() -> bytes:
    cfg = get_settings()
    if cfg.session_secret is not None and cfg.session_secret.get_secret_value():
        return cfg.session_secret.get_secret_value().encode()
    return _file_secret(cfg.data_dir / "session_secret")


def _signature(token: str) -> str:
    return hmac.new(_secret(), (_SIGNED + token).encode(), hashlib.sha256).hexdigest()


def sign(token: str) -> str:
    return f"{token}.{_signature(token)}"


def unsign(value: object) -> str | None:
    """The token inside a cookie value whose signature holds, else None."""
    if not isinstance(value, str):
        return None
    token, _, signature = value.rpartition(".")
    if not token or not hmac.compare_digest(signature, _signature(token)):
        return None
    return token


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=utcnow().tzinfo)


def open_login(session: Session, *, user: User, now: datetime | None = None) -> LoginOpened:
    """Open a login for a person whose password was just checked (``people.authenticate``)."""
    now = now or utcnow()
    code = secrets.token_urlsafe(32)
    row = LoginSession(user_id=id_of(user), epoch=user.session_epoch or 0, code_hash=token_hash(code),
                       code_expires_at=now + timedelta(seconds=CODE_TTL_S), created_at=now,
                       expires_at=now + timedelta(hours=get_settings().login_lifetime_hours))
    session.add(row)
    session.commit()
    return LoginOpened(login_id=id_of(row), code=code, expires_at=row.expires_at)


def claim_cookie(session: Session, *, code: str, now: datetime | None = None) -> LoginCookie:
    """Swap a login's one-time code for its cookie: once, within ``CODE_TTL_S``, while the login is open."""
    now = now or utcnow()
    row = session.exec(select(LoginSession).where(LoginSession.code_hash == token_hash(code or ""))).first()
    if row is None or row.code_expires_at is None or _aware(row.code_expires_at) < now or row.revoked_at:
        raise AuthenticationFailed("This login code is unknown, used or expired: log in again.")
    token = secrets.token_urlsafe(32)
    row.code_hash, row.code_expires_at, row.token_hash = None, None, token_hash(token)
    session.add(row)
    session.commit()
    return LoginCookie(value=sign(token), max_age_s=max(1, int((_aware(row.expires_at) - now).total_seconds())))


def _open_row(row: LoginSession | None, now: datetime) -> str | None:
    """Why a login row no longer logs anyone in, or None while it does."""
    if row is None:
        return ""
    if row.revoked_at is not None:
        return "Your login was ended (logged out, or the password was changed or reset): log in again."
    if _aware(row.expires_at) <= now:
        return f"Your login expired after {get_settings().login_lifetime_hours:g} hours: log in again."
    idle_minutes = get_settings().session_idle_minutes
    if now - _aware(row.seen_at or row.created_at) > timedelta(minutes=idle_minutes):
        return f"You were logged out after {idle_minutes:g} minutes without activity: log in again."
    return None


def _still_open(session: Session, row: LoginSession | None, now: datetime) -> str | None:
    """``_open_row``; a login found idle is ended for good, one in use is marked seen (once a minute at most,
    so a page's reruns do not each write)."""
    reason = _open_row(row, now)
    if row is None:
        return reason
    if reason is not None and row.revoked_at is None and _aware(row.expires_at) > now:
        row.revoked_at = now
    elif reason is None and now - _aware(row.seen_at or row.created_at) > timedelta(seconds=SEEN_EVERY_S):
        row.seen_at = now
    else:
        return reason
    session.add(row)
    session.commit()
    return reason


def resume(session: Session, *, cookie: object, now: datetime | None = None) -> Resumed:
    """Who the browser's cookie logs in: a signed token of an open, unexpired, recently used login of an active
    account whose password has not changed since."""
    now = now or utcnow()
    token = unsign(cookie)
    if token is None:
        return Resumed()
    row = session.exec(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).first()
    reason = _still_open(session, row, now)
    if reason is not None or row is None:
        return Resumed(reason=reason or "")
    user = vouched.get(session, User, row.user_id)  # a forged account row logs nobody in
    if user is None or not user.is_active or row.epoch != (user.session_epoch or 0):
        return Resumed(reason="Your login was ended (the account changed): log in again.")
    return Resumed(user=user, login_id=row.id)


def check_login(session: Session, *, login_id: int, now: datetime | None = None) -> SessionCheck:
    """Whether the login a tab runs under is still open (another tab may have logged out, or it idled)."""
    reason = _still_open(session, session.get(LoginSession, login_id), now or utcnow())
    if reason is None:
        return SessionCheck(True)
    return SessionCheck(False, reason or "Your session ended: log in again.")


def end_login(session: Session, *, login_id: int | None, now: datetime | None = None) -> None:
    """Log out: the login's cookie logs nobody in any more, in any tab."""
    if login_id is None:
        return
    session.exec(update(LoginSession).where(col(LoginSession.id) == login_id, col(LoginSession.revoked_at).is_(None))
                 .values(revoked_at=now or utcnow()))
    session.commit()


def end_all(session: Session, *, user: User, keep: int | None = None, now: datetime | None = None) -> int:
    """End every open login of an account, but ``keep`` (the login of the person changing their own password,
    which carries on under the account's new epoch); the caller commits. Returns how many ended."""
    query = update(LoginSession).where(col(LoginSession.user_id) == user.id, col(LoginSession.revoked_at).is_(None))
    if keep is not None:
        session.exec(update(LoginSession).where(col(LoginSession.id) == keep, col(LoginSession.user_id) == user.id)
                     .values(epoch=user.session_epoch or 0))
        query = query.where(col(LoginSession.id) != keep)
    return session.exec(query.values(revoked_at=now or utcnow())).rowcount  # type: ignore[attr-defined]
