"""Long work (teacher runs, training) as jobs that run outside the UI's script run.

A job is a database row; ``run`` executes it in the current process (the CLI
does this, with a terminal progress bar) and ``start_detached`` starts it in a
separate process (the app does this, then polls the row). Every kind is named
in ``JobKind``, so ``submit`` checks a kind without importing the package that
runs it (those sit above store); the owning module registers the kind's handler
with ``@handler`` when it is imported, and whoever runs jobs imports the modules
of the kinds it runs (``stillroom jobs run`` imports them all).

A job's events are written in the name of the person who submitted it, so only
two runners may start it from outside: that person, proven as the CLI proves
anyone (``require_runner``), or the process ``start_detached`` started for it,
which holds a one-time credential in its environment (stored hashed, used up
when the job is claimed).

With ``STILLROOM_JOB_RUNNER=workers`` ``start_detached`` starts no process: it hands the job to the workers
(``stillroom worker`` on any host, core.store.worker), in the submitter's name and with an audit event. A worker
runs only jobs handed to it, each in a process that proves itself with a one-time credential the worker minted
when it claimed the job, and every write of that process is fenced by the worker's id: its progress and finish
by a conditional UPDATE, and its handler's own rows (a training run's curve and result, an evaluation, teacher
outputs) by the engine the handler is given (``fenced``), whose every commit first re-claims the job's row. A job
taken over by another worker can no longer be written to, nor finished, by the one that lost it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import event, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from core.domain.errors import AuthenticationFailed, InvalidInput, PermissionDenied, StillroomError
from core.domain.hashing import token_hash
from core.domain.stored import read_stored, stored_json
from core.domain.validation import parse
from core.store import audit, vouched
from core.store.artifacts import data_dir
from core.store.config import get_settings
from core.store.db import get_engine
from core.store.models import AuditEvent, Job, Project, User, id_of, utcnow


class JobKind(StrEnum):
    """Every kind of job the packages above store run (the value is what a Job row stores). Names only: each
    owning module registers its kind's handler with ``@handler`` when imported; store imports none of them."""

    TEACHER_RUN = "teacher-run"
    TRAIN = "train"
    TRAIN_SEARCH = "train-search"
    EVALUATE = "evaluate"
    DEMO_TEACHER = "demo-teacher"
    DEMO_SETUP = "demo-setup"


Handler = Callable[["JobContext"], "BaseModel | dict[str, Any]"]
# Filled as the owning modules are imported (tests register kinds of their own too).
HANDLERS: dict[str, Handler] = {}
# Each kind's typed contract: the params it is submitted with and the result it finishes with (None: untyped).
PARAMS: dict[str, type[BaseModel] | None] = {}
RESULTS: dict[str, type[BaseModel] | None] = {}
M = TypeVar("M", bound=BaseModel)
# A running job whose heartbeat is older than this, and whose process is gone, died.
STALE_AFTER = timedelta(seconds=60)
# Called in the transaction that records a job's failure, whoever records it (the job's own run, a reader noticing
# its process died, a worker whose job ran out of claims): (session, job, error, the id of the failure's audit
# event). Each failure is recorded by one conditional UPDATE, so each is told once, however many processes saw it
# (a run that lost its job to another worker records nothing). core.notify registers the submitter's notice here,
# since the store imports no step above it.
NoticedFailure = Callable[[Session, Job, str, int], None]
FAILURE_LISTENERS: list[NoticedFailure] = []


def noticed_failure(session: Session, job: Job, error: str, *, failure: AuditEvent) -> None:
    """Tell the registered listeners that ``job`` failed with ``error``, recorded by the audit event ``failure``
    in the caller's transaction (the caller commits)."""
    for listener in FAILURE_LISTENERS:
        listener(session, job, error, id_of(failure))
# The states a job can be claimed from (a failed job resumes).
RUNNABLE = ("queued", "failed")
# Where the process start_detached starts finds its job's one-time credential.
CREDENTIAL_ENV = "STILLROOM_JOB_CREDENTIAL"


def handler(kind: str, *, params: type[BaseModel] | None = None,
            result: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
    """Register the function that does the work of jobs of ``kind``, with the models of its params and result:
    params are validated when submitted and when the handler reads them, the result when it is stored."""

    def wrap(fn: Handler) -> Handler:
        HANDLERS[kind], PARAMS[kind], RESULTS[kind] = fn, params, result
        return fn

    return wrap


@dataclass
class JobContext:
    job_id: int
    project_id: int
    params: dict[str, Any]
    engine: Engine
    on_progress: Callable[[float, str], None] | None = None
    min_interval_s: float = 0.5
    worker: str | None = None  # the worker holding the job (its writes are fenced by it), None when run by hand
    _last: float = field(default=0.0, repr=False)

    def progress(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        """Record progress (0..1); writes at most every ``min_interval_s`` unless forced."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.on_progress:
            self.on_progress(fraction, message)
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        with Session(self.engine) as s:
            written = cast(CursorResult[Any], s.execute(  # an UPDATE's result is a cursor's, with its row count
                update(Job).where(*_held(self.job_id, self.worker))
                .values(progress=fraction, message=message, heartbeat_at=utcnow())
            )).rowcount
            s.commit()
        if written != 1 and self.worker is not None:
            raise _lost(self.job_id, self.worker)

    def read(self, model: type[M]) -> M:
        """The job's params as ``model``; RecordTampered naming the field when the stored row no longer fits."""
        return read_stored(model, self.params, what=f"job #{self.job_id}'s params")


class JobLost(StillroomError):
    """The worker that ran this job lost it (its heartbeat went quiet and another worker took it over)."""


def _lost(job_id: int, worker: str) -> JobLost:
    return JobLost(f"job #{job_id} was taken over by another worker after {worker} went quiet: this run stops "
                   "and records nothing more.")


# The execution option of an engine whose sessions write for a worker's job: (job id, the worker holding it).
FENCE_OPTION = "stillroom_job_fence"


def fenced(engine: Engine, *, job_id: int, worker: str) -> Engine:
    """``engine`` (the same pool) for a worker's run of a job: every session on it commits only while ``worker``
    still holds the job, so a run that lost its job to another worker changes no row of its handler's (a training
    run's status and curve, an evaluation, teacher outputs) after the takeover: its commit raises JobLost."""
    return engine.execution_options(**{FENCE_OPTION: (job_id, worker)})


@event.listens_for(OrmSession, "before_commit")
def _fence(session: OrmSession) -> None:
    """In the committing transaction, before it commits: claim the job's row for this worker (a conditional
    UPDATE, which also counts as a heartbeat). A takeover committed first leaves it matching no row: JobLost, and
    nothing of the transaction is committed (its files go too: core.store.artifacts). On PostgreSQL the row stays
    locked until this commit, so a takeover cannot slip in between (the workers' claim skips locked rows).
    Sessions on other engines pass untouched."""
    options = getattr(session.bind, "get_execution_options", None)
    fence = options().get(FENCE_OPTION) if options is not None else None
    if fence is None:
        return
    job_id, worker = fence
    if _rowcount(session, update(Job).where(*_held(job_id, worker)).values(heartbeat_at=utcnow())) != 1:
        raise _lost(job_id, worker)


def _held(job_id: int, worker: str | None) -> list[Any]:
    """The conditions of a write by the job's runner: for a worker's run, only while that worker still holds it."""
    if worker is None:
        return [col(Job.id) == job_id]
    return [col(Job.id) == job_id, col(Job.worker) == worker, col(Job.status) == "running"]


def _stored_params(kind: str, params: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """The JSON a job of ``kind`` stores for ``params``: validated into the kind's model (InvalidInput naming the
    field), written with only the keys given, so the same request stores the same row (and row hash) as before."""
    model = PARAMS.get(kind)
    if model is None:
        return stored_json(params) if isinstance(params, BaseModel) else dict(params)
    typed = parse(model, params.model_dump() if isinstance(params, BaseModel) and not isinstance(params, model)
                  else params)
    return typed.model_dump(mode="json", by_alias=True, exclude_unset=True)


def submit(session: Session, *, actor: User, project: Project, kind: str,
           params: BaseModel | dict[str, Any]) -> Job:
    """Queue a job of ``kind`` (a ``JobKind``, or a kind whose handler this process registered)."""
    if kind not in set(JobKind) and kind not in HANDLERS:
        known = sorted({*JobKind, *HANDLERS})
        raise InvalidInput(f"unknown job kind {kind!r}: use one of {', '.join(known)}.", field="kind")
    kind = str(kind)  # the plain value, as the row and its audit event store it
    params = _stored_params(kind, params)
    job = Job(project_id=id_of(project), kind=kind, params=params, created_by=id_of(actor))
    session.add(job)
    session.flush()
    audit.record(session, actor=actor, action="job.submit", entity="job", entity_id=job.id,
                 project_id=project.id, payload={"kind": kind, "params": params})
    session.commit()
    return job


def require_runner(session: Session, *, job_id: int, person: User) -> Job:
    """The job, if ``person`` may run it: its events are written in its submitter's name, so only the submitter."""
    job = get(session, job_id)
    if job.created_by != person.id:
        owner = vouched.get(session, User, job.created_by)
        by = repr(owner.username) if owner is not None else f"user #{job.created_by}"
        raise PermissionDenied(f"job #{job.id} was submitted by {by}: only they may run it, since its "
                               f"events are written in their name; {person.username!r} can submit a job of their own.")
    return job


def run(job_id: int, *, engine: Engine | None = None,
        on_progress: Callable[[float, str], None] | None = None, credential: str | None = None) -> Job:
    """Run a queued job to completion in this process; returns the finished row. With ``credential`` (the
    process start_detached started) the job is claimed only if that is its one-time credential. The module
    that registers the job's kind must have been imported first; else the job is left as it was."""
    engine = engine or get_engine()
    work = _handler_of(engine, job_id)
    job = _claim(engine, job_id, credential)
    if job.worker is not None:
        _exit_with(os.getppid())
    # A worker's run writes its handler's rows through a fenced engine: each commit only while it holds the job.
    work_engine = engine if job.worker is None else fenced(engine, job_id=id_of(job), worker=job.worker)
    ctx = JobContext(id_of(job), job.project_id, dict(job.params), work_engine, on_progress, worker=job.worker)
    status, result, error = "done", {}, ""
    try:
        result = _stored_result(job.kind, work(ctx))
    except StillroomError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 (a job must record why it died)
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    return _finish(engine, job_id, status, result, error, worker=job.worker)


def _exit_with(parent: int) -> None:
    """End this process when the worker that started it is gone (killed, its host's session ended): the worker
    no longer heartbeats the job, so another worker will take it over, and two runs must not overlap."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(75)  # EX_TEMPFAIL: nothing more is written; the job is taken over once its heartbeat is stale

    threading.Thread(target=watch, name="stillroom-worker-watch", daemon=True).start()


def _stored_result(kind: str, result: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    model = RESULTS.get(kind)
    if model is not None:
        result = parse(model, result)
    return stored_json(result) if isinstance(result, BaseModel) else dict(result or {})


def _handler_of(engine: Engine, job_id: int) -> Handler:
    """The handler of the job's kind, refused with the module to import when this process has not imported it."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise InvalidInput(f"no job #{job_id}.", field="job")
        kind = job.kind
    if kind not in HANDLERS:
        raise StillroomError(f"no handler for job kind {kind!r} is registered in this process: import the module "
                             f"that declares @handler({kind!r}) before running job #{job_id} (`stillroom jobs run` "
                             "imports every one); the job is left as it was.")
    return HANDLERS[kind]


def _claim(engine: Engine, job_id: int, credential: str | None = None) -> Job:
    """Mark the job running for this process in one conditional UPDATE: of two processes that try at once,
    exactly one changes the row and runs it; the other is refused. A credential is checked and used up in the
    same UPDATE: the one start_detached gave its process, or the one a worker minted when it claimed the job
    (core.store.worker), which leaves the job running for that worker."""
    with Session(engine, expire_on_commit=False) as s:
        claimed = 0
        if credential is not None:
            claimed = _rowcount(s, update(Job).where(
                col(Job.id) == job_id, col(Job.runner_hash) == token_hash(credential),
                col(Job.status) == "running", col(Job.worker).is_not(None),
            ).values(pid=os.getpid(), heartbeat_at=utcnow(), runner_hash=None))
        if not claimed:
            runnable = [col(Job.id) == job_id, col(Job.status).in_(RUNNABLE)]
            if credential is not None:
                runnable.append(col(Job.runner_hash) == token_hash(credential))
            now = utcnow()
            claimed = _rowcount(s, update(Job).where(*runnable).values(
                status="running", pid=os.getpid(), started_at=now, heartbeat_at=now, error="", runner_hash=None,
                worker=None))
        s.commit()
        job = s.get(Job, job_id)
        if job is None:
            raise InvalidInput(f"no job #{job_id}.", field="job")
        if claimed != 1 and credential is not None and job.status in RUNNABLE:
            raise AuthenticationFailed(f"the job credential in ${CREDENTIAL_ENV} is not job #{job_id}'s, or was used "
                                       "up when the job started: run the job again from the app, or as the person "
                                       "who submitted it.")
        if claimed != 1:
            raise InvalidInput(f"job #{job_id} is {job.status}: only a queued or failed job can run "
                               "(another process may have claimed it first).", field="job")
        return job


def _rowcount(session: OrmSession, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount  # an UPDATE's result carries its row count


def _finish(engine: Engine, job_id: int, status: str, result: dict[str, Any], error: str, *,
            worker: str | None = None) -> Job:
    """Record the outcome and its event in the submitter's name; for a worker's run, only while that worker
    still holds the job (one taken over meanwhile is the new holder's to finish: this run records nothing)."""
    with Session(engine, expire_on_commit=False) as s:
        values: dict[str, Any] = {"status": status, "result": result, "error": error, "finished_at": utcnow()}
        if status == "done":
            values["progress"] = 1.0
        if not _rowcount(s, update(Job).where(*_held(job_id, worker)).values(**values)):
            s.rollback()
            return s.get_one(Job, job_id)
        job = s.get_one(Job, job_id)
        # The finish is recorded even when the author's account was tampered with since (verify reports that).
        actor = vouched.get(s, User, job.created_by) or f"user #{job.created_by}"
        payload: dict[str, Any] = {"kind": job.kind, "error": error}
        if worker is not None:
            payload |= {"worker": worker, "attempt": job.attempts}
        event = audit.record(s, actor=actor, action=f"job.{status}", entity="job", entity_id=job.id,
                             project_id=job.project_id, payload=payload)
        if status == "failed":  # told here, where the failure is recorded: a run that lost its job never is
            noticed_failure(s, job, error, failure=event)
        s.commit()
        return job


def start_detached(job_id: int, *, extra_env: dict[str, str] | None = None) -> int | None:
    """Start ``stillroom jobs run ID`` in its own process session; returns its pid.

    ``extra_env`` reaches only that process (a teacher's API key, say), never a file or the database; so does
    the job's one-time credential, which lets that process run the job in its submitter's name.

    With ``STILLROOM_JOB_RUNNER=workers`` no process starts (None): the job is handed to the workers
    (``hand_to_workers``), and ``extra_env`` goes nowhere: a worker reads a teacher's key from its own environment.
    """
    if get_settings().job_runner == "workers":
        hand_to_workers(job_id)
        return None
    credential = _mint_credential(job_id)
    logs = data_dir() / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"job-{job_id}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "jobs", "run", str(job_id)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(extra_env or {}), CREDENTIAL_ENV: credential},
        )
    return proc.pid


def hand_to_workers(job_id: int, *, engine: Engine | None = None) -> Job:
    """Leave a queued (or failed, to resume) job for ``stillroom worker``: any worker may now claim it, and runs
    it in its submitter's name, so the hand-off is recorded in that name too. Its claim count starts again."""
    with Session(engine or get_engine(), expire_on_commit=False) as s:
        handed = _rowcount(s, update(Job).where(col(Job.id) == job_id, col(Job.status).in_(RUNNABLE)).values(
            status="queued", for_workers=True, worker=None, attempts=0, runner_hash=None, error=""))
        job = get(s, job_id)
        if not handed:
            raise InvalidInput(f"job #{job_id} is {job.status}: only a queued or failed job can be handed to the "
                               "workers.", field="job")
        actor = vouched.get(s, User, job.created_by) or f"user #{job.created_by}"
        audit.record(s, actor=actor, action="job.handoff", entity="job", entity_id=job.id, project_id=job.project_id,
                     payload={"kind": job.kind})
        s.commit()
        return job


def _mint_credential(job_id: int) -> str:
    """A fresh one-time credential for the job's runner; only its hash is stored (a new start replaces it)."""
    credential = secrets.token_urlsafe(32)
    with Session(get_engine()) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(runner_hash=token_hash(credential)))
        s.commit()
    return credential


def get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise InvalidInput(f"no job #{job_id}.", field="job")
    return mark_if_dead(session, job)


def mark_if_dead(session: Session, job: Job) -> Job:
    """A running job whose process is gone and whose heartbeat went quiet has failed. Not a worker's job: its
    process runs on another host, and when its heartbeat goes quiet another worker takes it over."""
    if job.status != "running" or job.heartbeat_at is None or job.worker is not None:
        return job
    beat = job.heartbeat_at if job.heartbeat_at.tzinfo else job.heartbeat_at.replace(tzinfo=utcnow().tzinfo)
    if utcnow() - beat > STALE_AFTER and not _alive(job.pid):
        error = "The job's process stopped before it finished: run it again to resume."
        # Conditional, so two readers noticing the same death record one failure and one audit event.
        marked = cast(CursorResult[Any], session.execute(  # an UPDATE's result is a cursor's, with its row count
            update(Job).where(col(Job.id) == job.id, col(Job.status) == "running")
            .values(status="failed", finished_at=utcnow(), error=error)
        )).rowcount
        if marked == 1:
            event = audit.record(session, actor="(system)", action="job.failed", entity="job", entity_id=job.id,
                                 project_id=job.project_id,
                                 payload={"kind": job.kind, "error": error, "pid": job.pid, "noticed": "process gone"})
            noticed_failure(session, job, error, failure=event)
        session.commit()
        session.refresh(job)
    return job


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def open_jobs(session: Session, *, project_id: int, kinds: Sequence[str], limit: int = 3) -> list[Job]:
    """The project's newest jobs of these kinds that are queued, running, or failed (to show or resume)."""
    rows = session.exec(
        select(Job).where(Job.project_id == project_id, col(Job.kind).in_(list(kinds)),
                          col(Job.status).in_(("queued", "running", "failed")))
        .order_by(col(Job.id).desc()).limit(limit)
    ).all()
    return [mark_if_dead(session, job) for job in rows]


def list_jobs(session: Session, *, project_id: int, limit: int = 50) -> list[Job]:
    return list(session.exec(
        select(Job).where(Job.project_id == project_id).order_by(col(Job.id).desc()).limit(limit)
    ).all())


def result_or_raise(job: Job) -> dict[str, Any]:
    if job.status != "done":
        raise StillroomError(f"Job #{job.id} {job.status}: {job.error or job.message}")
    return job.result


def result_as(job: Job, model: type[M]) -> M:
    """A finished job's result as ``model`` (StillroomError when it did not finish; RecordTampered when the
    stored result no longer fits)."""
    return read_stored(model, result_or_raise(job), what=f"job #{job.id}'s result")


def params_as(job: Job, model: type[M]) -> M:
    """A job's stored params as ``model`` (RecordTampered naming the field when they no longer fit)."""
    return read_stored(model, job.params, what=f"job #{job.id}'s params")


# --------------------------------------------------------------------------- what a job is doing


@dataclass(frozen=True)
class JobState:
    """A job as the people watching it should read it: its stored status, or ``stalled`` for a worker's job whose
    heartbeat went quiet. Derived on reading, never stored (the row stays "running" until a worker takes it over
    or fails it), so every reader (``jobs list``, ``jobs show``, the app's job panel) tells the same truth."""

    status: str  # queued, running, done, failed, or the derived "stalled"
    note: str = ""  # who holds it and what happens next; "" when the status says it all

    def sentence(self) -> str:
        return f"{self.status}: {self.note}" if self.note else self.status


def worker_stale_after() -> timedelta:
    """How long a worker's job may go without a heartbeat before it counts as stalled and another worker takes it
    over (STILLROOM_WORKER_STALE_S; core.store.worker applies the same span in its claim's SQL)."""
    return timedelta(seconds=get_settings().worker_stale_s)


def silent_since(job: Job, *, now: datetime | None = None) -> datetime | None:
    """When a running worker's job last heartbeated, if that is longer ago than ``worker_stale_after``; else
    None (the job is not a worker's, not running, or its worker is alive)."""
    if job.status != "running" or job.worker is None or job.heartbeat_at is None:
        return None
    beat = _aware(job.heartbeat_at)
    return beat if (now or utcnow()) - beat > worker_stale_after() else None


def state(job: Job, *, now: datetime | None = None) -> JobState:
    """What the job is doing, in one sentence a person can act on (see ``JobState``)."""
    now = now or utcnow()
    if job.status == "queued" and job.for_workers:
        return JobState("queued", "for the workers: it starts when a `stillroom worker` claims it")
    if job.status != "running" or job.worker is None:
        return JobState(job.status)
    beat = silent_since(job, now=now)
    if beat is None:
        return JobState("running", f"on worker {job.worker}")
    if job.attempts >= get_settings().worker_max_attempts:
        then = (f"it has used its {job.attempts} claims, so the next worker to poll fails it, saying why; run it "
                "again to resume")
    else:
        then = "another worker will take it over and run it again (start `stillroom worker` on any host if none runs)"
    return JobState("stalled", f"worker {job.worker} silent since {beat:%Y-%m-%d %H:%M:%S} UTC "
                               f"({duration((now - beat).total_seconds())} ago); {then}")


# --------------------------------------------------------------------------- how long


MIN_PROGRESS_FOR_ESTIMATE = 0.02  # below this the rate says too little to promise a finish


@dataclass(frozen=True)
class Timing:
    """How long a job has run and, while it runs, about how long is left at the rate its progress moved."""

    elapsed_s: float | None  # None while queued
    left_s: float | None  # None until the progress gives a rate (or once the job has stopped)

    def sentence(self) -> str:
        if self.elapsed_s is None:
            return "not started"
        left = f", about {duration(self.left_s)} left" if self.left_s is not None else ""
        return f"{duration(self.elapsed_s)} elapsed{left}"


def timing(job: Job, *, now: datetime | None = None) -> Timing:
    """Elapsed time from the job's start to its end (or ``now``), and the time left at the rate so far: the
    steps done (its progress) over the time they took, applied to the steps left. A stalled job (``state``)
    promises no finish: nothing is moving it."""
    if job.started_at is None:
        return Timing(None, None)
    now = now or utcnow()
    end = _aware(job.finished_at) if job.finished_at else now
    elapsed = max(0.0, (end - _aware(job.started_at)).total_seconds())
    p = float(job.progress or 0.0)
    if job.status != "running" or p < MIN_PROGRESS_FOR_ESTIMATE or elapsed <= 0 or silent_since(job, now=now):
        return Timing(elapsed, None)
    return Timing(elapsed, elapsed * (1.0 - p) / p)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(seconds: float | None) -> str:
    """A span as people say it: 45s, 3m 05s, 1h 02m (a dash when unknown)."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "—"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
