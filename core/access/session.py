"""What the app's pages need from the database layer, so that no page imports it: a session on the
configured database, the settings, the person's and the project's rows, jobs' progress and the check
of the audit record. Each is one call into ``core.store``; the rules stay there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlmodel import Session

from core.store import jobs
from core.store.config import Settings, get_settings
from core.store.db import get_engine, init_db, session_scope
from core.store.models import Job, Project, User
from core.store.verification import AuditReport, verify

# The rows a page holds and passes back to core: named here so that pages can annotate them.
__all__ = ["Job", "Project", "Settings", "User", "database_url", "job", "job_state", "open_jobs", "open_session",
           "prepare_database", "project_by_id", "settings", "start_job", "verify_record"]


def settings() -> Settings:
    return get_settings()


def database_url() -> str:
    return get_settings().db_url


def prepare_database(url: str) -> None:
    """Create or upgrade the schema and its guards (the app does it once per server and database)."""
    init_db(get_engine(url))


@contextmanager
def open_session(url: str) -> Iterator[Session]:
    with session_scope(get_engine(url)) as session:
        yield session


def project_by_id(session: Session, *, project_id: int) -> Project | None:
    return session.get(Project, project_id)


def job(session: Session, *, job_id: int) -> Job:
    return jobs.get(session, job_id)


def job_timing(job: Job) -> str:
    """The job's elapsed time and, while it runs, the estimate of what is left (``core.store.jobs.timing``)."""
    return jobs.timing(job).sentence()


def job_state(job: Job) -> jobs.JobState:
    """What the job is doing as its watchers should read it: its status, or "stalled" when its worker went quiet
    (``core.store.jobs.state``)."""
    return jobs.state(job)


def open_jobs(session: Session, *, project_id: int, kinds: Sequence[str], limit: int = 3) -> list[Job]:
    return jobs.open_jobs(session, project_id=project_id, kinds=kinds, limit=limit)


def start_job(job_id: int) -> int | None:
    """Run a queued job in its own process (the page then polls its progress); returns the process id, or None
    when the job is left for `stillroom worker` (STILLROOM_JOB_RUNNER=workers)."""
    return jobs.start_detached(job_id)


def verify_record(*, expect_head: str | None = None) -> AuditReport:
    """``stillroom audit verify`` on the configured database: the chain, anchors, rows and files."""
    return verify(get_engine(), expect_head=expect_head)
