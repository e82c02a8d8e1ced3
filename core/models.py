"""SQLModel tables: people, projects, roles, and the governance record.

Tables named in ``APPEND_ONLY_TABLES`` accept INSERT only; database triggers
(see ``core.db``) refuse UPDATE and DELETE whoever issues them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Role(StrEnum):
    SPONSOR = "sponsor"
    DRIVER = "driver"
    VALIDATOR = "validator"
    OPERATOR = "operator"


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(max_length=120)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    is_admin: bool = False
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=120)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class RoleAssignment(SQLModel, table=True):
    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(max_length=16)
    assigned_at: datetime = Field(default_factory=utcnow)


class Qualification(SQLModel, table=True):
    """One recorded qualification of a project's trigger (append-only)."""

    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int
    inputs: dict = Field(sa_column=Column(JSON, nullable=False))
    recommendation: str = Field(max_length=32)
    reasons: list = Field(sa_column=Column(JSON, nullable=False))
    payback_months: float | None = None
    verdict: str = Field(max_length=32)
    rationale: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    recorded_by: int = Field(foreign_key="user.id")
    recorded_at: datetime = Field(default_factory=utcnow)


class GateVersion(SQLModel, table=True):
    """A locked success gate. Rows are inserted locked and never change."""

    __tablename__ = "gate_version"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int
    # Canonical JSON of the gate spec: exactly the text the content hash covers.
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str = Field(max_length=64)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    supersedes_hash: str | None = Field(default=None, max_length=64)
    locked_by: int = Field(foreign_key="user.id")
    locked_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """One link of the audit hash chain (append-only)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    ts: str = Field(max_length=32)
    actor: str = Field(max_length=64)
    project_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64, index=True)
    entity: str = Field(max_length=32)
    entity_id: str = Field(default="", max_length=64)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    # Unique so two concurrent writers can never fork the chain.
    prev_hash: str = Field(max_length=64, unique=True)
    hash: str = Field(max_length=64, unique=True)


# Append-only tables and their unique keys: an INSERT that collides with an
# existing key is refused too, since INSERT OR REPLACE would otherwise delete
# the old row without firing a DELETE trigger.
APPEND_ONLY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "audit_event": (("id",), ("prev_hash",), ("hash",)),
    "gate_version": (("id",), ("project_id", "version")),
    "qualification": (("id",), ("project_id", "version")),
}
APPEND_ONLY_TABLES = tuple(APPEND_ONLY_KEYS)
