"""SQLModel tables: people, projects, roles, and the governance record.

Tables named in ``APPEND_ONLY_TABLES`` accept INSERT only; database triggers
(see ``core.store.db``) refuse UPDATE and DELETE whoever issues them. Someone who can
drop the triggers can still change rows; ``stillroom audit verify`` reports
those changes (see ``core.store.audit`` for what it cannot detect).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Table, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Field, SQLModel

from core.domain.roles import Role  # noqa: F401  (the column's vocabulary; re-exported for old imports)


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Table a ``table=True`` model maps to (SQLModel sets ``__table__`` on those classes without declaring it)."""
    table = sa_inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def id_of(row: SQLModel) -> int:
    """The id of a row that is in the database (read, or flushed): every table here has an integer ``id`` key."""
    value: int | None = getattr(row, "id", None)
    if value is None:
        raise ValueError(f"this {type(row).__name__} has no id yet: add and flush it first")
    return value


def project_of(row: SQLModel) -> int | None:
    """The project a row belongs to, or None for a table without a project (people) or a row of none."""
    value: int | None = getattr(row, "project_id", None)
    return value


class TableModel(SQLModel):
    """The base of every table here. Pydantic builds a model's validator and serializer when one is first used,
    not when the class is defined: table models are constructed without validation, so start-up skips building
    them (about a tenth of the cost of defining the tables; issue 18, tests/store/test_startup_cost.py)."""

    model_config = SQLModel.model_config | {"defer_build": True}


class User(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(max_length=120)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    is_admin: bool = False
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Bumped when the password is reset: the app ends every session opened under an older epoch (issue 11).
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Project(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=120)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class RoleAssignment(TableModel, table=True):
    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(max_length=16)
    assigned_at: datetime = Field(default_factory=utcnow)


class Qualification(TableModel, table=True):
    """One recorded qualification of a project's trigger (append-only)."""

    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    recommendation: str = Field(max_length=32)
    reasons: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    payback_months: float | None = None
    verdict: str = Field(max_length=32)
    rationale: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    recorded_by: int = Field(foreign_key="user.id")
    recorded_at: datetime = Field(default_factory=utcnow)


class GateVersion(TableModel, table=True):
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


class AuditEvent(TableModel, table=True):
    """One link of the audit hash chain (append-only)."""

    __tablename__ = "audit_event"
    # Issue 9: which rows the chain vouches for is read per entity (core.store.integrity).
    __table_args__ = (Index("ix_audit_event_entity", "entity", "entity_id"),)

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
    # Issue 9: the SHA-256 of the recorded row's content after this change ("deleted" when it was removed),
    # covered by ``hash``; and an HMAC of ``hash`` under STILLROOM_AUDIT_KEY when a key is configured.
    row_hash: str | None = Field(default=None, max_length=64)
    mac: str | None = Field(default=None, max_length=64)


# --- Step 3 and 4: data, teacher outputs, training -------------------------------------------


class Artifact(TableModel, table=True):
    """A file under the data directory whose SHA-256 the database vouches for (append-only)."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    kind: str = Field(max_length=32)  # inputs, production, holdout, teacher-outputs, model, ...
    path: str = Field(sa_column=Column(Text, nullable=False))  # relative to the data directory
    sha256: str = Field(max_length=64)
    n_rows: int | None = None
    n_bytes: int
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Dataset(TableModel, table=True):
    """A version of a project's inputs: imported, or derived from a parent (append-only)."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=120)
    purpose: str = Field(max_length=16)  # "prompts" (to distil on) or "production" (the log)
    artifact_id: int = Field(foreign_key="artifact.id")
    parent_id: int | None = Field(default=None, foreign_key="dataset.id")
    operation: str = Field(max_length=32)  # import, dedup, oversample, ...
    mapping: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    n_rows: int
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Holdout(TableModel, table=True):
    """The project's held-out set, fixed once before any training (append-only, one per project)."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", unique=True)
    dataset_id: int = Field(foreign_key="dataset.id")
    artifact_id: int = Field(foreign_key="artifact.id")
    fingerprint: str = Field(max_length=64)
    n_rows: int
    stratify_by: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    seed: int
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Job(TableModel, table=True):
    """Long work run outside the UI's script run; pages and the CLI poll its progress."""

    __table_args__ = (Index("ix_job_claim", "status", "for_workers"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    kind: str = Field(max_length=32)  # teacher-run, train, ...
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="queued", max_length=16)  # queued, running, done, failed
    progress: float = 0.0
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    pid: int | None = None
    created_by: int = Field(foreign_key="user.id")
    # SHA-256 of the one-time credential of the process started for this job (core.store.jobs.start_detached).
    runner_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    # Issue 20 (core.store.worker). Handed to `stillroom worker` rather than a process of its own; the worker that
    # holds it while it runs (host:pid:tag, the fence every write of its runner checks); how many times a worker
    # claimed it (a job whose workers keep dying fails after STILLROOM_WORKER_MAX_ATTEMPTS).
    for_workers: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    worker: str | None = Field(default=None, max_length=96)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class TeacherRun(TableModel, table=True):
    """The teacher's full outputs on a dataset (append-only, written when a run completes)."""

    __tablename__ = "teacher_run"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    dataset_id: int = Field(foreign_key="dataset.id")
    adapter: str = Field(max_length=32)  # local, http, file, ensemble
    # Adapter settings with secrets removed: never an API key.
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    artifact_id: int = Field(foreign_key="artifact.id")
    n_rows: int
    labels: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    job_id: int | None = Field(default=None, foreign_key="job.id")
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class TeacherFilter(TableModel, table=True):
    """A filtering of teacher outputs by policy, with the counts per reason (append-only)."""

    __tablename__ = "teacher_filter"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    teacher_run_id: int = Field(foreign_key="teacher_run.id")
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    kept_artifact_id: int = Field(foreign_key="artifact.id")
    dropped_artifact_id: int = Field(foreign_key="artifact.id")
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class TrainingRun(TableModel, table=True):
    """One student trained by distillation; status and best figures change as it runs."""

    __tablename__ = "training_run"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    job_id: int | None = Field(default=None, foreign_key="job.id")
    gate_version_id: int = Field(foreign_key="gate_version.id")
    teacher_filter_id: int | None = Field(default=None, foreign_key="teacher_filter.id")
    teacher_run_id: int = Field(foreign_key="teacher_run.id")
    family: str = Field(max_length=32)  # transformer, ngram
    size: str = Field(max_length=32)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="queued", max_length=16)
    epochs_done: int = 0
    best_val_loss: float | None = None
    best_epoch: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    checkpoint_dir: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class TrainingPoint(TableModel, table=True):
    """A point of a run's loss curve."""

    __tablename__ = "training_point"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="training_run.id", index=True)
    epoch: int
    step: int
    train_loss: float
    val_loss: float | None = None
    val_agreement: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Evaluation(TableModel, table=True):
    """A student (trained here or imported predictions) scored on the holdout against the locked gate.

    Append-only: the report's hash is what a validator signs off and the sponsor decides on.
    """

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    round: int = 1
    gate_version_id: int = Field(foreign_key="gate_version.id")
    training_run_id: int | None = Field(default=None, foreign_key="training_run.id")
    source: str = Field(max_length=16)  # trained, imported
    job_id: int | None = Field(default=None, foreign_key="job.id")
    predictions_artifact_id: int = Field(foreign_key="artifact.id")  # one row per holdout example
    report_artifact_id: int = Field(foreign_key="artifact.id")  # the full report, canonical JSON
    report_hash: str = Field(max_length=64)
    passed: bool
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class ReviewVerdict(TableModel, table=True):
    """A validator's verdict on one holdout example of an evaluation (append-only)."""

    __tablename__ = "review_verdict"
    __table_args__ = (UniqueConstraint("evaluation_id", "item_id", "validator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    item_id: str = Field(max_length=200)
    verdict: str = Field(max_length=32)  # teacher-right, student-right, both-wrong, ambiguous
    rating: int | None = None  # optional human rating of the student's output, 1 to 5
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    validator_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class SignOff(TableModel, table=True):
    """A validator's approval or rejection of exactly one evaluation, named by its hash (append-only)."""

    __tablename__ = "sign_off"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    evaluation_hash: str = Field(max_length=64)
    approve: bool
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    validator_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    # Issue 10: the approval vouches for latency figures a person declared (not measured by Stillroom).
    covers_declared_latency: bool = False


class ThresholdProposal(TableModel, table=True):
    """The confidence threshold proposed for rollout: below it, the teacher answers (append-only)."""

    __tablename__ = "threshold_proposal"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    evaluation_id: int = Field(foreign_key="evaluation.id")
    threshold: float
    served_share: float
    student_accuracy: float | None = None
    fallback_rate: float
    blended_cost_per_1k: float | None = None
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Decision(TableModel, table=True):
    """The sponsor's ship, iterate or kill for a round, on an evaluation named by its hash (append-only)."""

    __table_args__ = (UniqueConstraint("project_id", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    round: int
    decision: str = Field(max_length=16)  # ship, iterate, kill
    rationale: str = Field(sa_column=Column(Text, nullable=False))
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id")
    evaluation_hash: str | None = Field(default=None, max_length=64)
    data_request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class RolloutEvent(TableModel, table=True):
    """An operator's step in a rollout: start a stage, advance, or roll back (append-only).

    The current stage is the latest event's; stages are shadow, then percentages of traffic.
    """

    __tablename__ = "rollout_event"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    action: str = Field(max_length=16)  # start, advance, rollback
    stage: str = Field(max_length=16)  # the stage in force after this event: shadow, 5, 25, 100, off
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id")
    training_run_id: int | None = Field(default=None, foreign_key="training_run.id")
    threshold: float | None = None  # the fallback threshold in force
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    criteria: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class MonitorConfig(TableModel, table=True):
    """A project's monitoring thresholds (PSI warn and alert, agreement floor); changes are audited."""

    __tablename__ = "monitor_config"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", unique=True)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_by: int = Field(foreign_key="user.id")
    updated_at: datetime = Field(default_factory=utcnow)


class RedistillRequest(TableModel, table=True):
    """An operator's request for a new round drawn from drifted live traffic (append-only)."""

    __tablename__ = "redistill_request"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    drift: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dataset_id: int | None = Field(default=None, foreign_key="dataset.id")  # the drifted traffic, as data
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


# --- Issue 11 (attack surface): login attempts, personal API tokens and serving tokens ---------------


class LoginAttempt(TableModel, table=True):
    """One login try, by account and by client: what backoff and lockout count (append-only)."""

    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, max_length=64)
    client: str = Field(index=True, max_length=200)
    succeeded: bool
    refused: bool = False  # refused unchecked because the account or the client was locked out
    at: datetime = Field(default_factory=utcnow, index=True)


class AccessToken(TableModel, table=True):
    """A bearer secret, stored only as its SHA-256: a person's CLI token (kind "cli") or a project's serving
    token (kind "serve", created by an operator for the clients of ``stillroom serve``)."""

    __tablename__ = "access_token"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8, index=True)
    name: str = Field(max_length=120)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # the first characters, to tell tokens apart in lists
    user_id: int = Field(foreign_key="user.id", index=True)  # the owner (cli) or the creator (serve)
    project_id: int | None = Field(default=None, foreign_key="project.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    revoked_by: int | None = Field(default=None, foreign_key="user.id")


class LoginSession(TableModel, table=True):
    """A browser login that outlives a refresh (issue 19). The browser holds a random token in a signed HttpOnly
    cookie; only the token's SHA-256 is stored. The page claims the cookie once with a short-lived one-time
    code (also stored as its SHA-256). Logging out, a password reset, deactivation or idling sets ``revoked_at``."""

    __tablename__ = "login_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    epoch: int = 0  # the account's session epoch when the login opened (a password reset moves it)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)  # set when the cookie is claimed
    code_hash: str | None = Field(default=None, max_length=64, unique=True)  # cleared when claimed
    code_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    seen_at: datetime | None = None  # the last script run under it (at most a minute stale): the idle limit
    revoked_at: datetime | None = None


# --- Issue 9 (trust you can check): anchors of the audit chain -------------------------------


class AuditAnchor(TableModel, table=True):
    """The chain's head hash when a gate was locked, a sign-off or a decision recorded (append-only).

    ``entity`` "migration" marks where the chain stood when anchors began: events up to it predate them.
    """

    __tablename__ = "audit_anchor"

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True)
    head_hash: str = Field(max_length=64)
    entity: str = Field(max_length=32)
    entity_id: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


# Issue 18: how far a full ``audit verify`` reached, so ``audit verify --since`` walks only what follows. Each row
# is written with its own audit event (a tracked row), so one INSERTed with SQL vouches for nothing.
class VerifyCheckpoint(TableModel, table=True):
    """A full verify that found the record intact up to ``event_id`` (append-only)."""

    __tablename__ = "verify_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    event_id: int  # the newest event that verify checked
    head_hash: str = Field(max_length=64)  # its hash
    count: int  # events up to it
    anchor_id: int  # the newest anchor row then
    file_offset: int  # bytes of the checkpoint file read then: --since reads the lines after them
    row_ids: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON: entity -> highest row id then
    verified_at: str = Field(max_length=32)


# Issue 10 (students trained elsewhere): the holdout grows only as new fingerprinted versions.
class HoldoutVersion(TableModel, table=True):
    """A later version of the project's holdout: every row of the one before plus new rows that were never
    training rows (append-only; version 1 is the Holdout row itself)."""

    __tablename__ = "holdout_version"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int  # 2, 3, ...
    dataset_id: int = Field(foreign_key="dataset.id")  # where the added rows came from
    artifact_id: int = Field(foreign_key="artifact.id")  # all rows of this version
    fingerprint: str = Field(max_length=64)
    parent_fingerprint: str = Field(max_length=64)
    n_rows: int
    n_added: int
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)



# Issue 18 (replicas on several hosts): the request log in the database, when that database is PostgreSQL.
class RequestLogRow(TableModel, table=True):
    """One request a replica of ``stillroom serve`` answered (kind "requests") or refused ("refused"), inserted
    in batches (core.serving.requestlog); rollout and monitoring read it beside the JSONL files. Not part of the
    governance record: neither audited nor append-only (old traffic may be pruned)."""

    __tablename__ = "request_log"
    __table_args__ = (Index("ix_request_log_project_kind_ts", "project_id", "kind", "ts"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True))
    project_id: int = Field(foreign_key="project.id")
    kind: str = Field(max_length=16)
    ts: datetime
    host: str = Field(max_length=255)  # the replica that served it
    pid: int
    record: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- Issue 19 (a tool a team lives in): notifications, the inbox and webhooks ----------------------


class ToldEvent(TableModel):
    """What an inbox item and a webhook delivery both carry: the event's kind, its project and the page that does
    the work (the link: ?project=<project_id>&page=<page>[&evaluation=<id>]), its sentence, and for a state
    noticed rather than an act, the key that tells it once."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    project_id: int = Field(foreign_key="project.id", index=True)
    page: str = Field(max_length=32)
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id")
    text: str = Field(sa_type=Text)
    dedupe_key: str | None = Field(default=None, max_length=200, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Notification(ToldEvent, table=True):
    """One person's inbox item: work that became theirs (core.notify). Read marks change; nothing else does."""

    recipient_id: int = Field(foreign_key="user.id", index=True)
    read_at: datetime | None = None


class WebhookSubscription(TableModel, table=True):
    """An admin's webhook: a URL on STILLROOM_WEBHOOK_URLS and the kinds (and project) it hears about. The URL
    may carry a secret (a Slack path), so the database never holds it: only its SHA-256, by which the sender finds
    it on the server's list at each try, and ``shown``; removal keeps the row."""

    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    url_sha256: str = Field(max_length=64)  # of the URL as listed on STILLROOM_WEBHOOK_URLS (stripped)
    shown: str = Field(max_length=200)  # scheme://host[:port]/… and a fingerprint of the whole URL
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    project_id: int | None = Field(default=None, foreign_key="project.id")  # None: every project
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None
    removed_by: int | None = Field(default=None, foreign_key="user.id")


class WebhookDelivery(ToldEvent, table=True):
    """One event on its way to one subscription (the outbox): pending until a 2xx, failed after the last try.
    The body is built from these columns at each try and never stored."""

    __tablename__ = "webhook_delivery"

    subscription_id: int = Field(foreign_key="webhook_subscription.id", index=True)
    status: str = Field(default="pending", max_length=16, index=True)  # pending, delivered, failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_status_code: int | None = None
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    finished_at: datetime | None = None


class WebhookAttempt(TableModel, table=True):
    """Each try of a delivery: its status code or a fixed sentence, never the body either way (append-only)."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True)
    attempt: int
    status_code: int | None = None
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    duration_ms: float = 0.0
    at: datetime = Field(default_factory=utcnow)


# Append-only tables and their unique keys: an INSERT that collides with an
# existing key is refused too, since INSERT OR REPLACE would otherwise delete
# the old row without firing a DELETE trigger.
APPEND_ONLY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "audit_event": (("id",), ("prev_hash",), ("hash",)),
    "verify_checkpoint": (("id",),),  # issue 18
    "gate_version": (("id",), ("project_id", "version")),
    "qualification": (("id",), ("project_id", "version")),
    "artifact": (("id",),),
    "dataset": (("id",),),
    "holdout": (("id",), ("project_id",)),
    "teacher_run": (("id",),),
    "teacher_filter": (("id",),),
    "evaluation": (("id",),),
    "review_verdict": (("id",), ("evaluation_id", "item_id", "validator_id")),
    "sign_off": (("id",),),
    "threshold_proposal": (("id",),),
    "decision": (("id",), ("project_id", "round")),
    "rollout_event": (("id",),),
    "redistill_request": (("id",),),
    "audit_anchor": (("id",),),
    "login_attempt": (("id",),),
    "holdout_version": (("id",), ("project_id", "version")),
    "webhook_attempt": (("id",),),
}
APPEND_ONLY_TABLES = tuple(APPEND_ONLY_KEYS)
