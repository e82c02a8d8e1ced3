"""People: local accounts, password hashing (argon2) and the admin rule.

Only an admin manages people; the very first account of an empty database is
the exception (it bootstraps the first admin).

Logins are throttled per account and per client (``login_*`` settings): after
too many failures every further try is refused, unchecked, for a delay that
doubles with each failure; every failed or refused try is stored and audited.
A password reset moves the account's session epoch and ends every login
(``core.access.logins``) opened before it; sessions also end after ``session_idle_minutes`` unused.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, func, select

from core.access.logins import SessionCheck, end_all
from core.domain.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from core.store import audit, vouched
from core.store.config import get_settings
from core.store.models import LoginAttempt, User, utcnow

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 8
UNKNOWN_CLIENT = "unknown"


@cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong username costs as
    long as a wrong password and timing does not reveal which accounts exist."""
    return _hasher.hash("stillroom-timing-equaliser")


def require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(
            f"Only an admin manages people and projects; {actor.username} is not an admin."
        )


def validate_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "username must be 2-64 characters of lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (got {username!r}).",
            field="username",
        )
    return username


def validate_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )


def user_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def create_user(
    session: Session,
    *,
    actor: User | None,
    username: str,
    display_name: str,
    password: str,
    is_admin: bool = False,
) -> User:
    """Create an account. ``actor`` may be None only to bootstrap an empty database."""
    if actor is None:
        if user_count(session) > 0:
            raise PermissionDenied("Only an admin creates accounts once the first admin exists.")
        is_admin = True
    else:
        require_admin(actor)
    username = validate_username(username)
    display_name = (display_name or "").strip()
    if not display_name:
        raise InvalidInput("display name is empty: give the person's name.", field="display_name")
    validate_password(password)
    if session.exec(select(User).where(User.username == username)).first():
        raise InvalidInput(f"a user named {username!r} already exists: pick another username.", field="username")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=_hasher.hash(password),
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor or username,
        action="user.create",
        entity="user",
        entity_id=user.id,
        payload={"username": username, "display_name": display_name, "is_admin": is_admin},
    )
    session.commit()
    return user


def set_active(session: Session, *, actor: User, username: str, active: bool) -> User:
    require_admin(actor)
    user = get_user(session, username)
    if user.id == actor.id and not active:
        raise InvalidInput("you cannot deactivate your own account: ask another admin.", field="username")
    user.is_active = active
    session.add(user)
    if not active:
        end_all(session, user=user)
    audit.record(
        session, actor=actor, action="user.activate" if active else "user.deactivate",
        entity="user", entity_id=user.id, payload={"username": username},
    )
    session.commit()
    return user


def set_admin(session: Session, *, actor: User, username: str, admin: bool) -> User:
    """Grant or revoke the admin flag, audited (issue 9: a flag set with raw SQL shows in ``audit verify``)."""
    require_admin(actor)
    user = get_user(session, username)
    if user.id == actor.id and not admin:
        raise InvalidInput("you cannot revoke your own admin flag: ask another admin.", field="username")
    if user.is_admin == admin:
        raise InvalidInput(f"{username} is {'already' if admin else 'not'} an admin: nothing to do.",
                           field="username")
    user.is_admin = admin
    session.add(user)
    audit.record(session, actor=actor, action="user.admin" if admin else "user.unadmin", entity="user",
                 entity_id=user.id, payload={"username": username, "is_admin": admin})
    session.commit()
    return user


def set_password(session: Session, *, actor: User, username: str, password: str,
                 keep_login: int | None = None) -> User:
    """An admin resets anyone's password; a person may change their own. Every login of the account ends, but
    ``keep_login``: the login of the person changing their own password, in which they carry on."""
    user = get_user(session, username)
    if actor.id != user.id:
        require_admin(actor)
    validate_password(password)
    user.password_hash = _hasher.hash(password)
    # Every session opened before this moment ends (the app compares epochs on every run).
    user.session_epoch = (user.session_epoch or 0) + 1
    session.add(user)
    end_all(session, user=user, keep=keep_login if actor.id == user.id else None)
    # The payload never carries the password or its hash.
    audit.record(
        session, actor=actor, action="user.password", entity="user", entity_id=user.id,
        payload={"username": username, "sessions_ended": True},
    )
    session.commit()
    return user


# --------------------------------------------------------------------------- logins


def _failures(session: Session, *, column, value: str, since: datetime) -> list[datetime]:
    """Times of the failed (checked, not refused) tries matching ``column == value`` since ``since``."""
    return list(session.exec(
        select(LoginAttempt.at).where(column == value, LoginAttempt.at >= since,
                                      col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.refused).is_(False))
        .order_by(col(LoginAttempt.at))).all())


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=utcnow().tzinfo)


def locked_until(session: Session, *, username: str, client: str, now: datetime | None = None) -> datetime | None:
    """When tries for this account or from this client are accepted again; None when they are now.

    Per account the count restarts at its last successful login; per client it does not (a client that logs
    in to its own account must not reset its count against others').
    """
    cfg, now = get_settings(), now or utcnow()
    window_start = now - timedelta(seconds=cfg.login_window_s)
    last_ok = session.exec(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == username, col(LoginAttempt.succeeded).is_(True))).one()
    account_since = max(window_start, _aware(last_ok)) if last_ok else window_start
    latest = None
    for column, value, since in ((LoginAttempt.username, username, account_since),
                                 (LoginAttempt.client, client, window_start)):
        fails = _failures(session, column=column, value=value, since=since)
        if len(fails) >= cfg.login_max_failures:
            wait = min(cfg.login_backoff_s * 2 ** (len(fails) - cfg.login_max_failures), cfg.login_lockout_max_s)
            until = _aware(fails[-1]) + timedelta(seconds=wait)
            if until > now and (latest is None or until > latest):
                latest = until
    return latest


def _attempt(session: Session, *, username: str, client: str, succeeded: bool, refused: bool = False,
             user: User | None = None) -> None:
    session.add(LoginAttempt(username=username[:64], client=client, succeeded=succeeded, refused=refused))
    if not succeeded:
        # The actor is nobody yet: a failed try must not read as something the account's owner did.
        audit.record(session, actor="(not logged in)", action="login.refused" if refused else "login.fail",
                     entity="user", entity_id=user.id if user else "",
                     payload={"username": username[:64], "client": client})
    session.commit()


def authenticate(session: Session, *, username: str, password: str, client: str | None = None) -> User:
    """The account, if the password matches and neither the account nor the client is locked out.

    ``client`` names where the try comes from (the browser's address; the CLI passes the OS user). Every try is
    stored; failures and refusals are audited.
    """
    name = (username or "").strip().lower()
    client = client[:200] if isinstance(client, str) and client else UNKNOWN_CLIENT
    user = vouched.first(session, User, User.username == name)  # a forged account row logs nobody in
    until = locked_until(session, username=name, client=client)
    if until is not None:
        _attempt(session, username=name, client=client, succeeded=False, refused=True, user=user)
        wait = max(1, int((until - utcnow()).total_seconds()) + 1)
        raise AuthenticationFailed(f"Too many failed logins for this account or from this address: try again in "
                                   f"{wait} s (each further failure doubles the wait).")
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        _attempt(session, username=name, client=client, succeeded=False, user=user)
        raise AuthenticationFailed("Wrong username or password.") from None
    if user is None:
        _attempt(session, username=name, client=client, succeeded=False)
        raise AuthenticationFailed("Wrong username or password.")
    if not user.is_active:
        _attempt(session, username=name, client=client, succeeded=False, user=user)
        raise AuthenticationFailed("This account is deactivated: ask an admin to reactivate it.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.add(user)
        # Audited like every change of the row, so the chain still vouches for it (issue 9; no secret in it).
        audit.record(session, actor=user, action="user.rehash", entity="user", entity_id=user.id,
                     payload={"username": user.username})
    _attempt(session, username=name, client=client, succeeded=True, user=user)
    return user


def check_session(user: User | None, *, epoch: int | None, last_seen: float | None, now: float) -> SessionCheck:
    """The rule the app applies on every run: an active account, the epoch the session began under (a password
    reset moves it), and activity within ``session_idle_minutes`` (times in seconds, from one clock)."""
    if user is None or not user.is_active:
        return SessionCheck(False, "Your session ended (the account is deactivated or gone): log in again.")
    if epoch != (user.session_epoch or 0):
        return SessionCheck(False, "Your password was changed or reset, which ends every open session: log in "
                                   "again with the new password.")
    idle_s = get_settings().session_idle_minutes * 60
    if last_seen is not None and now - last_seen > idle_s:
        return SessionCheck(False, f"You were logged out after {idle_s / 60:g} minutes without activity: log in "
                                   "again.")
    return SessionCheck(True)


def get_user(session: Session, username: str) -> User:
    """The account the audit chain vouches for under ``username`` (a row INSERTed with SQL is no account)."""
    user = vouched.first(session, User, User.username == (username or "").strip())
    if user is None:
        raise NotFound(
            f"no user named {username!r}: check the spelling, or ask an admin to create the account.",
            field="username",
        )
    return user


def account(session: Session, user_id: int | None) -> User | None:
    """The account with this id as the audit chain vouches for it, else None (who a browser session is)."""
    return vouched.get(session, User, user_id)


def list_users(session: Session) -> list[User]:
    return vouched.rows(session, User, order_by=User.username)


def user_rows(session: Session, *, actor: User) -> list[dict]:
    """The accounts as a list shows them: who is an admin is shown to admins only."""
    return [{"username": u.username, "display_name": u.display_name, "is_active": u.is_active,
             **({"is_admin": u.is_admin} if actor.is_admin else {})} for u in list_users(session)]
