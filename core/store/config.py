"""One settings object, read from the environment (prefix ``STILLROOM_``).

``DATABASE_URL`` selects the database; by default Stillroom keeps a SQLite file
under the data directory: ``STILLROOM_DATA_DIR`` if set, else the checkout's
``data/`` when running from one (``make run``, the tests), else ``data/`` in
the current directory, so an installed Stillroom never writes inside its
site-packages.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """The checkout's data/ when core/ sits in one (its pyproject.toml beside it), else ./data: installed, the
    package's parent is site-packages, which is no place for a database."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data"
    return Path.cwd() / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STILLROOM_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "STILLROOM_DATABASE_URL"),
    )
    # Seconds a writer waits for SQLite's lock before giving up.
    busy_timeout_s: float = 10.0
    # The person the CLI acts as when --as is not given.
    user: str | None = None
    # Stillroom recommends kill after this many rounds in which no failing criterion improved by its margin
    # (in the criterion's own unit) and beyond the noise of its estimate (core.decision.decision).
    kill_after_rounds: int = Field(default=3, ge=1, le=100)
    kill_margin_points: float = Field(default=1.0, ge=0.0, le=100.0)  # accuracy-type criteria, in points (1 = 1 %)
    kill_margin_ms: float = Field(default=5.0, ge=0.0)  # p95 latency, in milliseconds
    kill_margin_cost: float = Field(default=0.01, ge=0.0)  # cost per 1,000 requests, in its currency
    # Issue 12. Seconds the default training flow (both families, a small search) may spend before it starts no
    # further candidate; each candidate also stops at what is left of it (core.training.search).
    train_budget_s: float = Field(default=900.0, ge=1.0, le=7 * 86_400)
    # Issue 11. The chat teacher may call only these base URLs (comma-separated, with their /v1 prefix) and read
    # its key only from these environment variables: set by the admin who runs the server, never by a run.
    teacher_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=list)
    teacher_key_vars: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["STILLROOM_TEACHER_API_KEY"])
    # Issue 20. The Python teacher may run only these callables (exact "package.module:function" names,
    # comma-separated; empty: none). Checked when a run is submitted and again before the module is imported.
    teacher_callables: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The local teacher the Teacher page offers first; unset: the one `stillroom demo` trains (core.teacher.runs).
    teacher_model_dir: Path | None = None
    # The largest local teacher directory a run may record (core.teacher.model_files): its files are hashed when
    # the run is submitted and, where another host may run it, copied to the artifact store.
    teacher_dir_max_gb: float = Field(default=20.0, gt=0.0)
    # A host's cached copy of such a directory (core.store.stored_dirs) unused for this many days is removed when
    # the host caches another.
    dir_cache_days: float = Field(default=7.0, gt=0.0)
    # Login protection: after login_max_failures failed tries (per account and per client, within
    # login_window_s) each further try waits login_backoff_s, doubling per failure up to login_lockout_max_s.
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window_s: float = Field(default=900.0, gt=0)
    login_backoff_s: float = Field(default=30.0, ge=0)
    login_lockout_max_s: float = Field(default=900.0, ge=0)
    # A browser session unused for this long is logged out.
    session_idle_minutes: float = Field(default=60.0, gt=0)
    # Issue 19: a login survives a refresh for this long (an HttpOnly cookie, checked against login_session). Its
    # signing key: STILLROOM_SESSION_SECRET, else a random key kept in the data directory (core.access.logins).
    login_lifetime_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    session_secret: SecretStr | None = None
    # The CLI refuses to act without a personal API token (`stillroom login`, or STILLROOM_TOKEN).
    cli_require_token: bool = False
    token: str | None = None  # STILLROOM_TOKEN: a CLI token given in the environment
    token_file: Path | None = None  # default: $XDG_CONFIG_HOME/stillroom/token (~/.config/stillroom/token)

    # Issue 19. Webhooks (core.notify) post only to these URLs (comma-separated, exactly as a subscription gives
    # them; the rule of teacher_endpoints), retried up to webhook_max_attempts times, waiting webhook_backoff_s
    # and doubling; app_url is the app's address, so a webhook's message links back into it.
    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_s: float = Field(default=2.0, ge=0.0, le=3600.0)
    webhook_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)
    app_url: str | None = None

    # Issue 20. Where a job started in the background runs: "process" (the default: a process of its own on this
    # machine, started by whoever starts the job) or "workers" (left queued for `stillroom worker` on any host that
    # reaches this database; core.store.worker). A worker heartbeats its jobs every worker_heartbeat_s; a job whose
    # heartbeat is older than worker_stale_s is taken over by another worker and run again (training resumes from
    # its last checkpoint), at most worker_max_attempts claims in all before it is failed with the reason.
    job_runner: Literal["process", "workers"] = "process"
    worker_heartbeat_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    worker_stale_s: float = Field(default=60.0, gt=0.0, le=86_400.0)
    worker_max_attempts: int = Field(default=3, ge=1, le=100)
    worker_poll_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # Issue 20. Where artifact files live: unset, the data directory on this machine; else an fsspec URL a team
    # mounts (file:///shared/stillroom, s3://bucket/stillroom with s3fs installed, memory://... in tests). Every
    # read is still checked against the SHA-256 the database recorded (core.store.artifacts).
    artifact_store: str | None = None

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> Settings:
        if self.worker_stale_s < 2 * self.worker_heartbeat_s:
            raise ValueError(f"STILLROOM_WORKER_STALE_S ({self.worker_stale_s:g}) must be at least twice "
                             f"STILLROOM_WORKER_HEARTBEAT_S ({self.worker_heartbeat_s:g}): else a live worker's job "
                             "is taken over between two of its heartbeats")
        return self

    @field_validator("teacher_endpoints", "teacher_key_vars", "teacher_callables", "webhook_urls", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v
    # Issue 9: the key of the audit chain's HMAC (from the environment or Streamlit secrets; never stored in the
    # database). Without it, whoever can recompute hashes and rewrite the checkpoint file can rewrite the chain.
    audit_key: SecretStr | None = None
    # Where the head checkpoints are appended; by default beside the SQLite file, else under the data directory.
    audit_checkpoint_file: Path | None = None

    @field_validator("audit_key")
    @classmethod
    def _real_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None
        if len(v.get_secret_value()) < 16:
            raise ValueError("STILLROOM_AUDIT_KEY is shorter than 16 characters: use a long random secret")
        return v

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stillroom.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
