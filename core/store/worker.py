"""``stillroom worker``: runs the jobs handed to workers, on any host that reaches the database.

The queue is the job table itself (the project's own claim-by-UPDATE; benchmarks/bench_worker_queue.py measures
it against procrastinate): a worker claims the oldest job handed to workers in one transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite's single writer serialises the conditional UPDATE), so no job runs twice. It runs
each claimed job in a process of its own (``stillroom jobs run ID`` holding a one-time credential, as the app's
background process does), heartbeats every job it holds in one UPDATE, and notices when one of its processes ends
without finishing its job. A job whose worker went quiet for ``worker_stale_s`` is taken over by another worker
and run again from the start of its handler (training resumes from its last recorded checkpoint, fetched from the
artifact store when that is not the data directory: core.training.checkpoints); after ``worker_max_attempts``
claims it is failed with a sentence saying so. Until then, whoever reads the job sees it "stalled"
(core.store.jobs.state), and the worker that lost it can write nothing more (core.store.jobs.fenced). SIGTERM
stops a worker cleanly: it claims nothing more, ends its jobs' processes and gives their jobs back to the queue,
uncounted.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.domain.hashing import token_hash
from core.store import audit
from core.store.artifacts import data_dir
from core.store.config import get_settings
from core.store.jobs import CREDENTIAL_ENV, noticed_failure, timing, worker_stale_after
from core.store.models import AuditEvent, Job, utcnow


def worker_id() -> str:
    """host:pid:tag: who holds a job, readable by the people watching it, unique across restarts."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Claim:
    """A job this worker now holds, and the credential its process proves itself with."""

    job_id: int
    kind: str
    attempt: int
    credential: str
    took_over_from: str | None = None


@dataclass(frozen=True)
class QueueRules:
    """How long a heartbeat may be quiet before a job is taken over, and how many claims a job gets."""

    stale_after: timedelta
    max_attempts: int

    @classmethod
    def from_settings(cls) -> QueueRules:
        return cls(worker_stale_after(), get_settings().worker_max_attempts)


def claim_next(engine: Engine, *, worker: str, kinds: Sequence[str] | None = None,
               rules: QueueRules | None = None) -> Claim | None:
    """Claim the oldest job handed to workers that is queued, or running under a worker whose heartbeat is stale
    (a takeover, recorded in the audit chain); None when there is nothing to claim. A stale job that has used up
    its claims is left to ``fail_exhausted``."""
    rules = rules or QueueRules.from_settings()
    credential, now = secrets.token_urlsafe(32), utcnow()
    values = {"status": "running", "worker": worker, "attempts": col(Job.attempts) + 1, "pid": None, "error": "",
              "runner_hash": token_hash(credential), "heartbeat_at": now,
              "started_at": func.coalesce(col(Job.started_at), now)}
    with Session(engine) as s:
        for _ in range(3 if engine.dialect.name == "sqlite" else 1):
            row = _claim_one(s, engine, _candidates(kinds, rules, now), values)
            if row is not None:
                break
        if row is None:
            s.rollback()
            return None
        if row.was is not None:  # a queued job has no holder: this one was held by a worker that went quiet
            _event(s, row.id, row.project_id, "job.takeover",
                   {"kind": row.kind, "from": row.was, "to": worker, "attempt": row.attempts})
        s.commit()
    return Claim(row.id, row.kind, row.attempts, credential, row.was)


def _candidates(kinds: Sequence[str] | None, rules: QueueRules, now: datetime) -> Any:
    query: Any = select(col(Job.id).label("pick_id"), col(Job.worker).label("was"),
                   col(Job.status).label("was_status")).where(
        col(Job.for_workers).is_(True),
        or_(col(Job.status) == "queued", and_(_stale(now - rules.stale_after),
                                              col(Job.attempts) < rules.max_attempts)),
    ).order_by(col(Job.id)).limit(1)
    return query.where(col(Job.kind).in_(list(kinds))) if kinds else query


def _claim_one(s: Session, engine: Engine, pick: Any, values: dict[str, Any]) -> Any:
    """The claimed row (id, kind, attempts, project_id and its previous holder ``was``), or None.

    PostgreSQL: one UPDATE over the picked row, locked until the claim commits (other workers skip it rather than
    wait). SQLite's RETURNING cannot name the picked row's old holder, so there the pick is read first and the
    UPDATE only changes the row if it is still as read (another worker's claim in between makes it match none)."""
    returning = (col(Job.id), col(Job.kind), col(Job.attempts), col(Job.project_id))
    if engine.dialect.name == "postgresql":
        picked = pick.with_for_update(skip_locked=True).subquery("pick")
        return s.execute(update(Job).where(col(Job.id) == picked.c.pick_id).values(**values)
                         .returning(*returning, picked.c.was).execution_options(synchronize_session=False)).first()
    found = s.execute(pick).first()
    if found is None:
        return None
    held = col(Job.worker).is_(None) if found.was is None else col(Job.worker) == found.was
    row = s.execute(update(Job).where(col(Job.id) == found.pick_id, col(Job.status) == found.was_status, held)
                    .values(**values).returning(*returning).execution_options(synchronize_session=False)).first()
    return None if row is None else _Picked(row.id, row.kind, row.attempts, row.project_id, found.was)


@dataclass(frozen=True)
class _Picked:
    id: int
    kind: str
    attempts: int
    project_id: int
    was: str | None


def _stale(before: datetime) -> Any:
    # The SQL form of core.store.jobs.silent_since: the job a reader sees as "stalled" is the one a worker takes.
    return and_(col(Job.status) == "running", col(Job.worker).is_not(None), col(Job.heartbeat_at) < before)


def fail_exhausted(engine: Engine, *, rules: QueueRules | None = None) -> list[int]:
    """Fail every job whose worker went quiet after it had used up its claims, saying why; returns their ids."""
    rules = rules or QueueRules.from_settings()
    failed = []
    with Session(engine) as s:
        for job in s.exec(select(Job).where(col(Job.for_workers).is_(True), col(Job.attempts) >= rules.max_attempts,
                                            _stale(utcnow() - rules.stale_after))).all():
            previous = job.worker
            error = (f"the job's worker stopped {job.attempts} times (last {previous}) before it finished: it is "
                     "not tried again; find the cause in the workers' logs, then run it again to resume.")
            if _changed(s, job, status="failed", error=error, finished_at=utcnow()):
                event = _event(s, job.id, job.project_id, "job.failed",
                               {"kind": job.kind, "error": error, "worker": previous})
                noticed_failure(s, job, error, failure=event)
                failed.append(int(job.id or 0))
        s.commit()
    return failed


def _changed(s: Session, job: Job, **values: Any) -> bool:
    """UPDATE the job only if it is still as read (status, holder and claim count): True when this one did. (The
    ORM also sets ``values`` on ``job`` itself: read what the claim needs from the row before.)"""
    held = col(Job.worker).is_(None) if job.worker is None else col(Job.worker) == job.worker
    statement = update(Job).where(col(Job.id) == job.id, col(Job.status) == job.status, held,
                                  col(Job.attempts) == job.attempts).values(**values)
    return bool(getattr(s.execute(statement), "rowcount", 0) == 1)


def _event(s: Session, job_id: int | None, project_id: int, action: str, payload: dict[str, Any]) -> AuditEvent:
    # The queue's own decisions, in no person's name (as core.store.jobs.mark_if_dead records a death).
    return audit.record(s, actor="(system)", action=action, entity="job", entity_id=job_id, project_id=project_id,
                        payload=payload)


def heartbeat(engine: Engine, *, worker: str) -> int:
    """Mark every job this worker holds as alive, in one UPDATE; returns how many it still holds."""
    with Session(engine) as s:
        beat = s.execute(update(Job).where(col(Job.worker) == worker, col(Job.status) == "running")
                         .values(heartbeat_at=utcnow()))
        s.commit()
        return int(getattr(beat, "rowcount", 0))


def give_back(engine: Engine, *, job_id: int, worker: str, reason: str, counted: bool,
              rules: QueueRules | None = None) -> str:
    """A job whose process ended without finishing it (or that this worker stops) goes back to the queue for any
    worker; a counted give-back that used up the claims fails the job instead. Returns what became of it."""
    rules = rules or QueueRules.from_settings()
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None or job.status != "running" or job.worker != worker:
            return "finished"
        if counted and job.attempts >= rules.max_attempts:
            error = (f"the job's process stopped {job.attempts} times before it finished ({reason}): it is not "
                     "tried again; find the cause in the worker's log, then run it again to resume.")
            if _changed(s, job, status="failed", error=error, finished_at=utcnow()):
                event = _event(s, job.id, job.project_id, "job.failed",
                               {"kind": job.kind, "error": error, "worker": worker})
                noticed_failure(s, job, error, failure=event)
            s.commit()
            return "failed"
        attempts = job.attempts if counted else job.attempts - 1
        if _changed(s, job, status="queued", worker=None, attempts=attempts, pid=None, runner_hash=None):
            _event(s, job.id, job.project_id, "job.requeued", {"kind": job.kind, "worker": worker, "reason": reason})
        s.commit()
        return "queued"


# --------------------------------------------------------------------------- the worker process


Spawn = Callable[[Claim], subprocess.Popen[bytes]]


def spawn_runner(claim: Claim) -> subprocess.Popen[bytes]:
    """``stillroom jobs run ID`` for a claimed job, holding the claim's credential; in this process group, so a
    signal to the worker's group reaches it, and its output in the job's log under the data directory."""
    logs = data_dir() / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"job-{claim.job_id}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", "jobs", "run", str(claim.job_id)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, CREDENTIAL_ENV: claim.credential}, cwd=Path.cwd(),
        )


@dataclass
class Running:
    claim: Claim
    process: subprocess.Popen[bytes]
    shown: tuple[int, str] = (-1, "")


@dataclass
class WorkerReport:
    """What a worker did before it stopped."""

    worker: str
    claimed: list[int] = field(default_factory=list)
    finished: dict[int, str] = field(default_factory=dict)  # job id -> done, failed, queued (given back)


class Worker:
    """Claims up to ``concurrency`` jobs at once and runs each in its own process until stopped (or, with
    ``once``, until nothing is left to claim and its jobs have ended)."""

    def __init__(self, *, engine: Engine, concurrency: int = 1, kinds: Sequence[str] | None = None,
                 once: bool = False, spawn: Spawn = spawn_runner, say: Callable[[str], None] = print) -> None:
        settings = get_settings()
        self.engine, self.concurrency, self.kinds, self.once = engine, concurrency, list(kinds or []), once
        self.spawn, self.say, self.id = spawn, say, worker_id()
        self.poll_s, self.heartbeat_s = settings.worker_poll_s, settings.worker_heartbeat_s
        self.rules = QueueRules.from_settings()
        self.running: dict[int, Running] = {}
        self.report = WorkerReport(self.id)
        self._stop = threading.Event()
        self._beat_at = 0.0

    def stop(self, signum: int | None = None, _frame: Any = None) -> None:
        """Claim nothing more; the loop then ends the jobs' processes and gives their jobs back."""
        self._stop.set()

    def run(self) -> WorkerReport:
        import time  # the loop's clock and pause

        self.say(f"worker {self.id}: up to {self.concurrency} job(s) at once"
                 + (f", kinds {', '.join(self.kinds)}" if self.kinds else ""))
        while not self._stop.is_set():
            self._reap()
            if time.monotonic() - self._beat_at >= self.heartbeat_s:
                heartbeat(self.engine, worker=self.id)
                for job_id in fail_exhausted(self.engine, rules=self.rules):
                    self.say(f"job #{job_id} failed: its workers stopped {self.rules.max_attempts} times")
                self._beat_at = time.monotonic()
            idle = self._fill()
            self._show()
            if self.once and idle and not self.running:
                break
            self._stop.wait(self.poll_s)
        self._shut_down()
        return self.report

    def _fill(self) -> bool:
        """Claim jobs until every slot is busy; True when the queue had nothing more."""
        while len(self.running) < self.concurrency and not self._stop.is_set():
            claim = claim_next(self.engine, worker=self.id, kinds=self.kinds, rules=self.rules)
            if claim is None:
                return True
            taken = f", taken over from {claim.took_over_from}" if claim.took_over_from else ""
            self.say(f"job #{claim.job_id} ({claim.kind}) claimed, attempt {claim.attempt}{taken}")
            self.running[claim.job_id] = Running(claim, self.spawn(claim))
            self.report.claimed.append(claim.job_id)
        return False

    def _reap(self) -> None:
        for job_id, run in list(self.running.items()):
            code = run.process.poll()
            if code is None:
                continue
            del self.running[job_id]
            self._ended(run, f"its process exited with code {code}", counted=True)

    def _ended(self, run: Running, reason: str, *, counted: bool) -> None:
        outcome = give_back(self.engine, job_id=run.claim.job_id, worker=self.id, reason=reason, counted=counted,
                            rules=self.rules)
        if outcome == "finished":
            with Session(self.engine) as s:
                job = s.get_one(Job, run.claim.job_id)
                outcome = job.status if job.worker == self.id else "taken over"
                detail = f": {job.error}" if job.error and job.worker == self.id else ""
        else:
            detail = f" ({reason})"
        self.report.finished[run.claim.job_id] = outcome
        self.say(f"job #{run.claim.job_id} ({run.claim.kind}) {outcome}{detail}")

    def _show(self) -> None:
        """One line per job whenever its progress moves by a tenth or its message changes."""
        if not self.running:
            return
        with Session(self.engine) as s:
            for job in s.exec(select(Job).where(col(Job.id).in_(list(self.running)))):
                run = self.running[int(job.id or 0)]
                step = (int(job.progress * 10), job.message)
                if step != run.shown:
                    run.shown = step
                    self.say(f"job #{job.id} ({job.kind}) {job.progress:.0%} {job.message} · "
                             f"{timing(job).sentence()}".rstrip())

    def _shut_down(self) -> None:
        if not self.running:
            return
        self.say(f"worker {self.id} stopping: giving {len(self.running)} job(s) back to the queue")
        for run in self.running.values():
            if run.process.poll() is None:
                run.process.send_signal(signal.SIGTERM)
        for run in self.running.values():
            try:
                run.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()
        for run in list(self.running.values()):
            self._ended(run, f"worker {self.id} was stopped", counted=False)
        self.running.clear()
