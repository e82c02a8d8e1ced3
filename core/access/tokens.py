"""Bearer tokens: a person's CLI token (``stillroom login``) and a project's serving tokens (``serve-token``).

A token is shown once, when it is made; the database keeps only its SHA-256 (the secret is 256 random bits, so a
fast hash is enough and checking a request costs microseconds). Creating and revoking are audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlmodel import Session, col

from core.access.projects import require_role
from core.domain.errors import AuthenticationFailed, InvalidInput, NotFound
from core.domain.hashing import token_hash
from core.domain.roles import Role
from core.store import audit, vouched
from core.store.models import AccessToken, Project, User, utcnow

CLI, SERVE = "cli", "serve"
_PREFIX = {CLI: "stc_", SERVE: "sts_"}


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is shown to the person once and never stored."""

    row: AccessToken
    secret: str


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("a token needs a name of 1 to 120 characters saying who or what uses it.", field="name")
    return name


def _make(session: Session, *, kind: str, name: str, user: User, project: Project | None) -> NewToken:
    secret = _PREFIX[kind] + secrets.token_urlsafe(32)
    row = AccessToken(kind=kind, name=_name(name), token_hash=token_hash(secret), prefix=secret[:10],
                      user_id=user.id, project_id=project.id if project else None)
    session.add(row)
    session.flush()
    return NewToken(row=row, secret=secret)


# --------------------------------------------------------------------------- CLI tokens


def create_cli_token(session: Session, *, user: User, name: str) -> NewToken:
    """A personal token for ``user`` (after they proved who they are with their password)."""
    made = _make(session, kind=CLI, name=name, user=user, project=None)
    audit.record(session, actor=user, action="token.create", entity="access_token", entity_id=made.row.id,
                 payload={"kind": CLI, "name": made.row.name, "prefix": made.row.prefix})
    session.commit()
    return made


def _cli_token(session: Session, secret: str) -> AccessToken | None:
    """The CLI token with this secret, as the audit chain vouches for it: a row INSERTed with raw SQL, or UPDATEd
    to take back its revocation, is not a credential."""
    return vouched.first(session, AccessToken, AccessToken.token_hash == token_hash(secret.strip()),
                         AccessToken.kind == CLI)


def user_for_token(session: Session, *, secret: str) -> User:
    """The active person a CLI token belongs to, or AuthenticationFailed saying what to do."""
    row = _cli_token(session, secret)
    user = vouched.get(session, User, row.user_id) if row is not None and row.revoked_at is None else None
    if user is None:
        raise AuthenticationFailed("the CLI token is unknown or revoked: run `stillroom login` to get a new one.")
    if not user.is_active:
        raise AuthenticationFailed(f"the account {user.username!r} is deactivated: ask an admin to reactivate it.")
    return user


def revoke_cli_token(session: Session, *, secret: str) -> AccessToken | None:
    """Revoke the token (``stillroom logout``); an unknown one is nothing to revoke."""
    row = _cli_token(session, secret)
    user = vouched.get(session, User, row.user_id) if row is not None and row.revoked_at is None else None
    return _revoke(session, row=row, actor=user) if user is not None else None


def _revoke(session: Session, *, row: AccessToken, actor: User) -> AccessToken:
    row.revoked_at, row.revoked_by = utcnow(), actor.id
    session.add(row)
    audit.record(session, actor=actor, action="token.revoke", entity="access_token", entity_id=row.id,
                 project_id=row.project_id, payload={"kind": row.kind, "name": row.name, "prefix": row.prefix})
    session.commit()
    return row


# --------------------------------------------------------------------------- serving tokens


def create_serve_token(session: Session, *, actor: User, project: Project, name: str) -> NewToken:
    """A token the clients of PROJECT's ``stillroom serve`` send as ``Authorization: Bearer ...`` (operator)."""
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="create a serving token")
    made = _make(session, kind=SERVE, name=name, user=actor, project=project)
    audit.record(session, actor=actor, action="token.create", entity="access_token", entity_id=made.row.id,
                 project_id=project.id, payload={"kind": SERVE, "name": made.row.name, "prefix": made.row.prefix})
    session.commit()
    return made


def serve_tokens(session: Session, *, project_id: int, include_revoked: bool = True) -> list[AccessToken]:
    """The project's serving tokens the audit chain vouches for (a forged or un-revoked row is none of them)."""
    where = [AccessToken.kind == SERVE, AccessToken.project_id == project_id]
    if not include_revoked:
        where.append(col(AccessToken.revoked_at).is_(None))
    return vouched.rows(session, AccessToken, *where, order_by=col(AccessToken.id))


def serve_tokens_for(session: Session, *, actor: User, project: Project) -> list[AccessToken]:
    """The project's serving tokens, for its operators only (the page and the CLI list them through this)."""
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="list serving tokens")
    return serve_tokens(session, project_id=project.id)


def active_serve_hashes(session: Session, *, project_id: int) -> frozenset[str]:
    """What the serving process checks each request's token against (re-read while it runs)."""
    return frozenset(t.token_hash for t in serve_tokens(session, project_id=project_id, include_revoked=False))


def revoke_serve_token(session: Session, *, actor: User, project: Project, token_id: int) -> AccessToken:
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="revoke a serving token")
    row = vouched.get(session, AccessToken, token_id)
    if row is None or row.kind != SERVE or row.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no serving token #{token_id}: list them with "
                       "`stillroom serve-token list PROJECT`.", field="token")
    if row.revoked_at is not None:
        raise InvalidInput(f"serving token #{token_id} is already revoked.", field="token")
    return _revoke(session, row=row, actor=actor)
