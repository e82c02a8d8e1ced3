"""``stillroom serve`` on every core: uvicorn worker processes, each with its own Service.

The command checks the project once (``check_servable``: shipped, a stage in force, a serving token, a live
teacher, an untampered student) and hands uvicorn an import string: each worker process calls ``worker_app``,
which rebuilds the Service from the project id and the settings in the environment (the database URL, the data
directory, the audit key) and so loads its own student, teacher, request log, token reader and state reader. A
revoked token therefore stops working in every worker within one refresh period, each worker reading the tokens
itself.

Wire format: uvicorn's httptools protocol on uvloop (both C; about twice the requests of h11 on asyncio),
with h11's limit on the request head kept (httptools alone accepts headers, and memory, without end).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.domain.errors import StillroomError
from core.serving.app import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MICRO_BATCH,
    DEFAULT_READ_TIMEOUT_S,
    Service,
    build_app,
    load_service,
    state_reader,
    token_reader,
)
from core.store.db import get_engine
from core.store.models import Project

OPTIONS_VAR = "STILLROOM_SERVE_OPTIONS"  # how the command passes its options to the worker processes
MAX_HEAD_BYTES = 16 * 1024  # the request line and headers of one request, as h11 allowed before
STARTUP_FAILURE = 3  # uvicorn's supervisor stops, rather than restarts, a worker that exits with this code
# How long uvicorn's supervisor waits for a worker's answer to its ping before it kills the worker as hung and
# starts another. Its default, 5 s, is shorter than loading torch and two models takes on a busy machine (the
# loading holds the interpreter the ping thread needs): the workers were killed and restarted without end.
HEALTHCHECK_S = 120


class ServeOptions(BaseModel):
    """What every worker needs to build its Service: the command's options, never a secret (tokens are read
    from the database by each worker)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project_id: int
    workers: int = Field(default=1, ge=1)
    escalate_to: Literal["teacher", "queue"] = "teacher"
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1)
    max_chars: int = Field(default=DEFAULT_MAX_CHARS, ge=1)
    max_body_bytes: int | None = None
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    require_token: bool = True
    refresh_s: float = Field(default=5.0, gt=0)
    micro_batch: int = Field(default=DEFAULT_MICRO_BATCH, ge=1)
    batch_wait_ms: float = Field(default=DEFAULT_BATCH_WAIT_MS, ge=0)


def default_workers() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_service(options: ServeOptions) -> Service:
    """One worker's Service: its own student, teacher and request log; its own readers of the rollout state and
    the serving tokens, refreshed every ``refresh_s``."""
    with Session(get_engine()) as session:
        project = session.get(Project, options.project_id)
        service = load_service(session, project=project, escalate_to=options.escalate_to,
                               max_concurrency=options.max_concurrency, max_chars=options.max_chars,
                               require_token=options.require_token, micro_batch=options.micro_batch,
                               batch_wait_ms=options.batch_wait_ms)
    _share_cores(options.workers)
    service.workers, service.refresh_s = options.workers, options.refresh_s
    service.read_timeout_s = options.read_timeout_s
    if options.max_body_bytes is not None:
        service.max_body_bytes = options.max_body_bytes
    service.refresh = state_reader(options.project_id)
    if options.require_token:
        service.refresh_tokens = token_reader(options.project_id)
    return service


def _share_cores(workers: int) -> None:
    """With several workers, each torch model computes on its share of the cores: torch's default (every core
    per process) would have the workers' threads fight over them. A worker whose models loaded without torch
    (an n-gram student with an endpoint or a person behind it) is left without it: importing torch only to set
    its threads would cost each worker about 180 MB and over a second of start-up."""
    torch = sys.modules.get("torch")
    if workers > 1 and torch is not None:
        torch.set_num_threads(max(1, default_workers() // workers))


def worker_app() -> ASGIApp:
    """uvicorn's factory (``core.serving.worker:worker_app``), called once in each worker process. A worker
    that cannot load (a model file changed since the check) says why and exits so that uvicorn stops them all
    instead of restarting it forever."""
    options = ServeOptions.model_validate_json(os.environ[OPTIONS_VAR])
    try:
        app = build_app(build_service(options))
    except StillroomError as exc:
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    settle_heap()
    return app


def settle_heap() -> None:
    """Move everything loaded so far (torch, the models, SQLAlchemy: millions of objects) out of the garbage
    collector's sight: it lives as long as the worker, and each full collection would walk all of it again,
    under load every few seconds, for tens of milliseconds that every waiting request pays."""
    gc.collect()
    gc.freeze()


class CappedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on the request head: past ``MAX_HEAD_BYTES`` of request line
    and headers the client gets 400 and its connection is closed.

    Counted on the bytes received while a head is incomplete; a chunk in which a head begins counts whole (an
    upper bound, reached only by a pipelined request behind a large body in the same read)."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self._in_head, self._head_bytes, self._count = True, 0, "add"
        super().connection_made(transport)
        self.transport = OneWritePerAnswer(transport, self.loop)  # type: ignore[assignment]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._count = True, "chunk"  # the head began inside this chunk: count all of it

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes, self._count = 0, "none"  # the rest of this chunk was that message's body

    def data_received(self, data: bytes) -> None:
        self._count = "add"
        super().data_received(data)
        if not self._in_head or self.transport.is_closing() or self._count == "none":
            return
        self._head_bytes = len(data) if self._count == "chunk" else self._head_bytes + len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.send_400_response(f"The request head is over {MAX_HEAD_BYTES} bytes.")


class OneWritePerAnswer:
    """A connection's transport that sends an answer's head and body in one write system call rather than two
    (uvicorn writes each ASGI message as it comes): the first write after the loop turned is held back, the next
    one goes out joined to it, and a held write still goes out when the loop turns or the connection closes.
    On loopback a write system call is the largest single cost of an answer."""

    __slots__ = ("_transport", "_loop", "_held", "_flush_due")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._held: bytes | None = None
        self._flush_due = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        elif not self._flush_due:
            self._held, self._flush_due = bytes(data), True
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        self._flush_due = False
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def run(options: ServeOptions, *, host: str, port: int) -> None:
    """Serve until stopped: ``options.workers`` processes on one listening socket (one: this process)."""
    import uvicorn  # lazy: only the serving command needs the server

    os.environ[OPTIONS_VAR] = options.model_dump_json()
    # timeout_keep_alive closes idle connections; the body deadline and size cap are enforced by the app; no
    # access log (the request log is the record, and a line per request costs a tenth of the throughput); no
    # X-Forwarded-For rewriting (a middleware call per request, and the refusal log keeps the peer's address).
    supervision = ({"timeout_worker_healthcheck": HEALTHCHECK_S}
                   if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters else {})
    uvicorn.run("core.serving.worker:worker_app", factory=True, workers=options.workers, host=host, port=port,
                http=CappedHttpTools, loop="auto", log_level="warning", access_log=False, timeout_keep_alive=5,
                proxy_headers=False, server_header=False, **supervision)
