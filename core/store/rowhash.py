"""Row hashes: the SHA-256 of a tracked row's content, as every audit event about that row carries it.

Below the audit chain (``core.store.audit`` hashes each row it records) and the checks that compare rows
with their events (``core.store.integrity``), so both read one definition of what a row's content is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel

from core.store import models

DELETED = "deleted"


@dataclass(frozen=True)
class Tracked:
    """A table whose rows audit events vouch for; ``fields`` None means every column.

    A migration that adds a column to a table hashed by every column changes the hash of its existing rows:
    give the table an explicit field list (without the new column) before adding one.
    """

    entity: str  # the audit events' entity name
    model: type[SQLModel]
    fields: tuple[str, ...] | None = None

    @property
    def table(self) -> str:
        return models.table_of(self.model).name

    def columns(self) -> list[Column[Any]]:
        table = models.table_of(self.model)
        return [table.c[f] for f in self.fields] if self.fields else list(table.c)


# Mutable tables name the columns their events account for; a job's progress or a training run's live
# figures change without an event and are not part of the record.
_TRACKED = [
    Tracked("user", models.User, ("id", "username", "display_name", "password_hash", "is_admin", "is_active")),
    Tracked("project", models.Project, ("id", "name", "description")),
    Tracked("role", models.RoleAssignment, ("id", "project_id", "user_id", "role")),
    Tracked("job", models.Job, ("id", "project_id", "kind", "params", "created_by")),
    Tracked("training_run", models.TrainingRun, ("id", "project_id", "job_id", "gate_version_id",
                                                 "teacher_filter_id", "teacher_run_id", "family", "size",
                                                 "config", "created_by")),
    Tracked("monitor_config", models.MonitorConfig),
    Tracked("qualification", models.Qualification),
    Tracked("gate", models.GateVersion),
    Tracked("artifact", models.Artifact),
    Tracked("dataset", models.Dataset),
    Tracked("holdout", models.Holdout),
    Tracked("teacher_run", models.TeacherRun),
    Tracked("teacher_filter", models.TeacherFilter),
    Tracked("evaluation", models.Evaluation),
    Tracked("review_verdict", models.ReviewVerdict),
    Tracked("sign_off", models.SignOff),
    Tracked("threshold_proposal", models.ThresholdProposal),
    Tracked("decision", models.Decision),
    Tracked("rollout_event", models.RolloutEvent),
    Tracked("redistill_request", models.RedistillRequest),
    Tracked("holdout_version", models.HoldoutVersion),  # issue 10: a later holdout version
]
_TRACKED.append(Tracked("verify_checkpoint", models.VerifyCheckpoint))  # issue 18: how far a full verify reached
if hasattr(models, "AccessToken"):  # issue 11's bearer tokens: a forged row would be a working credential
    _TRACKED.append(Tracked("access_token", models.AccessToken))
TRACKED: dict[str, Tracked] = {t.entity: t for t in _TRACKED}


# --------------------------------------------------------------------------- row hashes


def row_digest(prefix: bytes, values: Iterable[object]) -> str:
    """SHA-256 over the table's column names and the ``repr`` of the row's values as the database driver returns
    them (ints, floats, text, JSON text or the driver's parsed JSON, timestamps).

    Raw driver values, not ORM-converted ones: cheap enough to hash every row of a big table, and the write path
    (``row_state``) and every check read the same database the same way, so equal content gives equal hashes.
    A database moved to another engine (SQLite to PostgreSQL) reads values differently: verify it before moving.
    """
    row = values if type(values) is tuple else tuple(values)
    return hashlib.sha256(prefix + repr(row).encode("utf-8")).hexdigest()


def select_of(spec: Tracked, quote: Callable[[str], str]) -> tuple[bytes, str]:
    """The hash prefix (table and column names) and the SELECT of the columns a row's hash covers."""
    names = [c.name for c in spec.columns()]
    prefix = f"{spec.table}:{','.join(names)}\x1f".encode()
    return prefix, f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(spec.table)}"


def digests_where(conn: Connection, spec: Tracked, *, where: str = "",
                  params: dict[str, Any] | None = None) -> dict[str, str]:
    prefix, select_ = select_of(spec, conn.dialect.identifier_preparer.quote)
    stmt = text(f"{select_} {where}")
    if params and isinstance(params.get("ids"), list):
        stmt = stmt.bindparams(bindparam("ids", expanding=True))
    return {str(r[0]): row_digest(prefix, r) for r in conn.execute(stmt, params or {}).fetchall()}


def digests(conn: Connection, entity: str) -> dict[str, str]:
    """Every row of ``entity``'s table: {id: content hash}, as ``audit.record`` computes it."""
    return digests_where(conn, TRACKED[entity])


def row_state(session: Session, *, entity: str, entity_id: str) -> str | None:
    """The hash of the row an event is about, as stored now; DELETED when it is gone; None when untracked."""
    spec = TRACKED.get(entity)
    if spec is None or not str(entity_id).isdigit():
        return None
    got = digests_where(session.connection(), spec, where="WHERE id = :id", params={"id": int(entity_id)})
    return got.get(str(int(entity_id)), DELETED)
