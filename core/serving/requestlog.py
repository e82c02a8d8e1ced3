"""The request log: one JSON object per request, written before the answer is sent.

Two places, one reader (core.rollout.logs reads their union):

- **Files** (the embedded default, SQLite): each writing process appends to its own file per UTC day,
  ``PREFIX-YYYYMMDD-HOST-PID.jsonl``, so ``serve --workers N`` and replicas sharing a directory never write into
  one another's lines. Each line goes out in one ``os.write`` on a descriptor opened ``O_APPEND`` (a whole line
  even if two processes ever shared a file on a local filesystem). The line reaches the page cache before
  ``write`` returns, so a killed process loses no answered request (fsync is not needed for that: the page cache
  outlives the process; a power cut is another matter). A process killed inside ``os.write`` can leave one torn
  last line; the reader skips and counts it, and the next process to open that file starts on a fresh line.
- **The database** (when ``DATABASE_URL`` is PostgreSQL): replicas on several hosts insert into the
  ``request_log`` table in batches (``DatabaseRequestLog``). Batching trades durability for throughput: a
  replica killed (SIGKILL, a crash, the host lost) loses the requests it answered and had not yet inserted:
  normally under one batch (``batch_size`` records or ``flush_ms`` of traffic), more while the database is slow
  or unreachable (the buffer keeps them for the retry). What was inserted stays. A replica stopped normally
  (SIGTERM, Ctrl-C: the service closes its logs on shutdown) or exiting flushes everything. ``batch_size=1``
  inserts each record before the answer leaves, the file log's guarantee, at one round trip per request.

``open_request_log`` picks between them from the settings.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import orjson
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from core.rollout.logs import TRAFFIC, day_file, shared_url
from core.store import artifacts
from core.store.db import make_engine
from core.store.models import RequestLogRow, table_of

KEYS = ("ts", "request_id", "input_sha256", "input_chars", "slices", "stage", "served_by", "student_label",
        "student_confidence", "teacher_label", "teacher_asked", "reason", "latency_ms")
BATCH_SIZE = 200
FLUSH_MS = 100.0
MAX_BUFFER = 100_000  # records a replica holds while the database is unreachable before it drops the oldest
log = logging.getLogger(__name__)


def log_dir(project_id: int) -> Path:
    return artifacts.project_dir(project_id, "serving")


def host_name() -> str:
    """This machine's name, reduced to the characters a file name and the reader's pattern accept."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"


def _line(record: dict, now: datetime) -> bytes:
    """One line: compact UTF-8 JSON (orjson: a fifth of json.dumps's time, the same record read back)."""
    return orjson.dumps({"ts": now.isoformat(), **record}, option=orjson.OPT_APPEND_NEWLINE)


class RequestSink(Protocol):
    """What the service writes requests to: a file log or the shared table."""

    def write(self, record: dict, *, now: datetime | None = None) -> None: ...

    def sibling(self, prefix: str) -> RequestSink: ...

    def close(self) -> None: ...


class RequestLog:
    """Appends records to ``PREFIX-YYYYMMDD-HOST-PID.jsonl`` under ``directory``, switching files when the day
    changes (and when the process forks: the child writes its own file).

    The prefix is ``requests`` for answered traffic (what rollout is judged on) and ``refused`` for the requests
    the service turned away (400, 401, 408, 413, 503), which must never count as traffic.
    """

    def __init__(self, directory: Path, *, prefix: str = TRAFFIC):
        self.directory = Path(directory)
        self.prefix = prefix
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0  # the process, and the day [_since, _until), the open file is for
        self._since = self._until = datetime.min

    def path_for(self, day: str, pid: int | None = None) -> Path:
        writer = f"{host_name()}-{os.getpid() if pid is None else pid}"
        return self.directory / day_file(self.prefix, day, writer)

    def write(self, record: dict, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        data = _line(record, now)
        with self._lock:
            if self._fd is None or not self._since <= now < self._until or self._pid != _PROCESS[0]:
                self._open(now)
            assert self._fd is not None
            _write_all(self._fd, data)

    def sibling(self, prefix: str) -> RequestLog:
        return RequestLog(self.directory, prefix=prefix)

    def _open(self, now: datetime) -> None:
        if self._fd is not None:
            os.close(self._fd)  # after a fork, the child's copy: the parent's stays open
        self._since = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self._until, self._pid = self._since + timedelta(days=1), _PROCESS[0]
        self._fd = os.open(self.path_for(now.strftime("%Y%m%d")), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        _start_on_a_fresh_line(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# This process's id, kept up to date across forks: a write compares it instead of asking the kernel (os.getpid is a
# system call, once per request otherwise).
_PROCESS = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PROCESS.__setitem__(0, os.getpid()))


def _write_all(fd: int, data: bytes) -> None:
    """One ``write`` for the whole line; the loop only matters when the kernel accepts part (a full disk)."""
    while data:
        data = data[os.write(fd, data):]


def _start_on_a_fresh_line(fd: int) -> None:
    """End a torn last line left by an earlier process of this name (a reused pid), so the first line written
    now is not glued to it and lost with it."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


class DatabaseRequestLog:
    """Buffers records and inserts them into the ``request_log`` table in batches: every ``batch_size`` records
    or ``flush_ms`` milliseconds, whichever comes first, and on ``close`` (and at interpreter exit).

    What a killed replica can lose is stated in the module docstring: its unflushed batch. While the database is
    unreachable the records stay buffered and are retried; beyond ``MAX_BUFFER`` the oldest are dropped (and
    counted in ``dropped``) so a long outage cannot exhaust the replica's memory.
    """

    def __init__(self, engine: Engine, *, project_id: int, prefix: str = TRAFFIC, batch_size: int = BATCH_SIZE,
                 flush_ms: float = FLUSH_MS):
        if batch_size < 1 or flush_ms <= 0:
            raise ValueError("batch_size must be at least 1 and flush_ms above 0")
        self.engine, self.project_id, self.prefix = engine, project_id, prefix
        self.batch_size, self.flush_ms = batch_size, flush_ms
        self.dropped = 0
        self._host = host_name()
        self._buffer: list[dict] = []
        self._wake = threading.Condition()
        self._closed = False
        self._flusher: threading.Thread | None = None
        self._pid = os.getpid()
        atexit.register(self.close)

    def _after_fork(self) -> None:
        """A forked child: the parent's buffer and flusher stay the parent's, its connections are not ours."""
        self.engine.dispose(close=False)
        self._buffer, self._flusher, self._pid = [], None, os.getpid()

    def write(self, record: dict, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        row = {"project_id": self.project_id, "kind": self.prefix, "ts": now, "host": self._host,
               "pid": os.getpid(), "record": json.loads(_line(record, now))}
        if self.batch_size == 1 or self._closed:  # synchronous: in the database before the answer leaves
            self._insert([row])
            return
        with self._wake:
            if self._pid != os.getpid():
                self._after_fork()
            self._buffer.append(row)
            if len(self._buffer) > MAX_BUFFER:
                self.dropped += len(self._buffer) - MAX_BUFFER
                del self._buffer[: len(self._buffer) - MAX_BUFFER]
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._run, name="request-log-flush", daemon=True)
                self._flusher.start()
            if len(self._buffer) >= self.batch_size:
                self._wake.notify()

    def sibling(self, prefix: str) -> DatabaseRequestLog:
        return DatabaseRequestLog(self.engine, project_id=self.project_id, prefix=prefix,
                                  batch_size=self.batch_size, flush_ms=self.flush_ms)

    def flush(self) -> None:
        """Insert what is buffered now; on failure the records go back to the front of the buffer."""
        with self._wake:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            self._insert(batch)
        except Exception:
            with self._wake:
                self._buffer[:0] = batch
            raise

    def _insert(self, rows: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(table_of(RequestLogRow)), rows)

    def _run(self) -> None:
        failing = False
        while True:
            with self._wake:
                if not self._closed and (failing or len(self._buffer) < self.batch_size):
                    self._wake.wait(self.flush_ms / 1000)  # after a failure, wait a tick even with a full batch
                closed = self._closed
            try:
                self.flush()
            except Exception:  # noqa: BLE001  (the database is away: keep the records, retry on the next tick)
                if not failing:  # once per outage, not once per tick
                    log.exception("request log: inserting %s records failed; retrying", len(self._buffer))
                failing = True
            else:
                if failing:
                    log.warning("request log: the database answers again; the buffered records are in")
                failing = False
            if closed:
                return

    def close(self) -> None:
        """Flush what is buffered and stop the flusher; writes after close still go in (synchronously)."""
        with self._wake:
            self._closed = True
            flusher, self._flusher = self._flusher, None
            self._wake.notify()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        atexit.unregister(self.close)
        try:
            self.flush()
        except Exception:  # noqa: BLE001  (shutting down with the database away: say what is lost, then go)
            with self._wake:
                lost, self._buffer = len(self._buffer), []
                self.dropped += lost
            log.exception("request log: %s records could not be inserted before shutdown and are lost", lost)


def open_request_log(project_id: int, *, prefix: str = TRAFFIC, batch_size: int = BATCH_SIZE,
                     flush_ms: float = FLUSH_MS) -> RequestSink:
    """The request log a serving process writes to: the shared table when the database is PostgreSQL (replicas
    on several hosts), else this host's files under the project's artifacts. One per process."""
    url = shared_url()
    if url is not None:  # its own engine, made in the process that writes (never one inherited across a fork)
        return DatabaseRequestLog(make_engine(url), project_id=project_id, prefix=prefix, batch_size=batch_size,
                                  flush_ms=flush_ms)
    return RequestLog(log_dir(project_id), prefix=prefix)
