"""People: local accounts, password hashing (argon2) and the admin rule.

Only an admin manages people; the very first account of an empty database is
the exception (it bootstraps the first admin).
"""

from __future__ import annotations

import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, func, select

from core.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from core.governance import audit
from core.models import User

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 8


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


def set_password(session: Session, *, actor: User, username: str, password: str) -> None:
    """An admin resets anyone's password; a person may change their own."""
    user = get_user(session, username)
    if actor.id != user.id:
        require_admin(actor)
    validate_password(password)
    user.password_hash = _hasher.hash(password)
    session.add(user)
    # The payload never carries the password or its hash.
    audit.record(
        session, actor=actor, action="user.password", entity="user", entity_id=user.id,
        payload={"username": username},
    )
    session.commit()


def authenticate(session: Session, *, username: str, password: str) -> User:
    user = session.exec(select(User).where(User.username == (username or "").strip().lower())).first()
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        raise AuthenticationFailed("Wrong username or password.") from None
    if user is None:
        raise AuthenticationFailed("Wrong username or password.")
    if not user.is_active:
        raise AuthenticationFailed("This account is deactivated: ask an admin to reactivate it.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.add(user)
        # Audited like every change of the row, so the chain still vouches for it (issue 9; no secret in it).
        audit.record(session, actor=user, action="user.rehash", entity="user", entity_id=user.id,
                     payload={"username": user.username})
        session.commit()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == (username or "").strip())).first()
    if user is None:
        raise NotFound(
            f"no user named {username!r}: check the spelling, or ask an admin to create the account.",
            field="username",
        )
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.username)).all())
