"""The HTTP service behind ``stillroom serve``: the shipped student, the teacher as fallback, every request logged.

Starlette on uvicorn, one Service per worker process (core/serving/worker.py starts them): each event loop answers
an n-gram student inline (a few hundredths of a millisecond through its numpy forward pass) and hands model calls
that take longer, a transformer student's and the teacher's, to a worker thread, in micro-batches when requests
arrive together (core/serving/batching.py), so a slow teacher never holds up confident student answers.
``POST /v1/classify`` runs on plain ASGI, the rest of the app (``/health``, 404, 405, the lifespan) on Starlette.

Before a request takes one of the ``max_concurrency`` slots it must show a serving token (``Authorization: Bearer``,
checked against the SHA-256s of the project's unrevoked tokens) and its body must arrive whole within
``read_timeout_s`` and ``max_body_bytes``: an oversized Content-Length is refused unread, a chunked body is
refused as soon as it passes the cap, and a slow client is cut off at the deadline, so neither memory nor the
slots can be held by a client. Every refusal is counted (``/health``, per worker) and written to
``refused-YYYYMMDD.jsonl`` beside the request log, never into it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from core.access.tokens import active_serve_hashes
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.rollout_state import RolloutState
from core.evaluation import rounds
from core.ml.ngram_array import ArrayNgram
from core.rollout import fallback
from core.rollout.rollout import state as rollout_state
from core.serving import router
from core.serving.batching import Batcher
from core.serving.inline import InlineNgram
from core.serving.requestlog import RequestSink, open_request_log
from core.store.artifacts import path_of
from core.store.db import get_engine
from core.store.models import Evaluation, Project, TrainingRun
from core.training.runs import student_artifact

DEFAULT_MAX_CHARS = 10_000
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_MICRO_BATCH = 32  # texts per model call at most (1: one call per request)
DEFAULT_BATCH_WAIT_MS = 2.0  # how long the first text of a batch waits for company
MAX_ID_CHARS = 200  # a client's request id
MAX_ACCEPTED_HEADERS = 1024  # valid Authorization headers remembered per worker (one per client token)


def default_max_body_bytes(max_chars: int) -> int:
    """The largest body a text of ``max_chars`` needs: a UTF-8 character is at most 4 bytes, a JSON escape 6."""
    return 8 * max_chars + 4096


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1)
    id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    slices: dict[str, str | int | float | bool] | None = None


@dataclass
class Service:
    """Everything one serving process holds: loaded once at start, the rollout state refreshed while it runs."""

    project_id: int
    state: RolloutState
    student: Any  # predict_proba(texts) and .labels (core.ml.students)
    teacher: Any  # a core.teacher adapter: predict(texts, labels=) -> [Prediction]
    teacher_labels: list[str]
    log: RequestSink
    escalate_to: Literal["teacher", "queue"] = "teacher"
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_chars: int = DEFAULT_MAX_CHARS
    model: dict = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    refresh: Callable[[], RolloutState] | None = None  # re-reads the rollout state; None in unit tests
    refresh_s: float = 5.0
    started: float = field(default_factory=time.monotonic)
    # SHA-256s of the serving tokens accepted; None only when the operator turned auth off (--no-auth).
    token_hashes: frozenset[str] | None = None
    refresh_tokens: Callable[[], frozenset[str]] | None = None
    max_body_bytes: int | None = None  # default: default_max_body_bytes(max_chars)
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    refused: Counter = field(default_factory=Counter)  # "400", "401", ... or "disconnected" -> requests turned away
    refused_log: RequestSink | None = None  # default: the refused requests, wherever the request log goes
    # Micro-batching (core.serving.batching): None answers each request with its own model call. A transformer
    # student and a local teacher get one when --micro-batch > 1; an n-gram student always answers inline.
    student_batcher: Batcher | None = None
    teacher_batcher: Batcher | None = None
    # An n-gram student answered by word-score sums kept per word (core.serving.inline); None: predict_proba.
    inline: InlineNgram | None = None
    workers: int = 1  # processes serving this port (each holds its own Service)
    # Request ids when the client sends none: a random prefix per process and a counter, unique across workers
    # and a tenth of uuid4's cost (no system call per request).
    id_prefix: str = field(default_factory=lambda: secrets.token_hex(8))
    id_counter: Any = field(default_factory=itertools.count)
    # Authorization headers that passed, each with the set of token hashes it passed against: a header is hashed
    # again as soon as the refresh loop replaces the set, so a revoked token is refused from the next refresh on.
    accepted_headers: dict[str | None, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_body_bytes is None:
            self.max_body_bytes = default_max_body_bytes(self.max_chars)
        if self.refused_log is None:
            self.refused_log = self.log.sibling("refused")

    def new_request_id(self) -> str:
        return f"{self.id_prefix}{next(self.id_counter):016x}"

    def batching(self) -> dict:
        """What /health shows of micro-batching: per model, the calls made and the texts they answered."""
        return {name: b.stats.as_dict() | {"max_batch": b.max_batch, "max_wait_ms": b.max_wait_s * 1000}
                for name, b in (("student", self.student_batcher), ("teacher", self.teacher_batcher)) if b}


# --------------------------------------------------------------------------- loading


def check_servable(session: Session, *, project: Project, require_token: bool = True
                   ) -> tuple[RolloutState, frozenset[str] | None, TrainingRun]:
    """The rollout state, the accepted token hashes and the student's training run of a project that may be
    served: refused (GovernanceViolation) unless it shipped, a stage is on and, with ``require_token``, an
    operator has created at least one serving token. Loads no model (``serve`` checks before starting workers)."""
    made = rounds.decisions(session, project_id=project.id)
    if not made or made[-1].decision != "ship":
        raise GovernanceViolation(f"project {project.name!r} has no ship decision: only a shipped student is served.")
    st = rollout_state(session, project_id=project.id)
    if st.stage == "off":
        raise GovernanceViolation(f"project {project.name!r} has no rollout stage in force: start the rollout "
                                  "(shadow first) before serving.")
    hashes = active_serve_hashes(session, project_id=project.id) if require_token else None
    if require_token and not hashes:
        raise GovernanceViolation(f"project {project.name!r} has no serving token, so no client could call the "
                                  "service: create one with `stillroom serve-token create` (or pass --no-auth "
                                  "for local development only).")
    run = _training_run(session, st)
    fallback.require_ready(fallback.of_run(session, project_id=project.id, training_run_id=run.id),
                           project=project, doing="be served")
    student_artifact(session, run)  # hash-checked: a changed model file is refused before any worker loads it
    return st, hashes, run


def load_service(session: Session, *, project: Project, escalate_to: str = "teacher",
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, max_chars: int = DEFAULT_MAX_CHARS,
                 require_token: bool = True, micro_batch: int = 1,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS) -> Service:
    """The service for a project in rollout (``check_servable`` first), its student and teacher loaded; with
    ``micro_batch`` > 1 a transformer student and a local teacher answer concurrent requests in batches."""
    if escalate_to not in ("teacher", "queue"):
        raise InvalidInput(f"escalate_to {escalate_to!r} is neither teacher nor queue.", field="escalate_to")
    st, hashes, run = check_servable(session, project=project, require_token=require_token)
    student = _load_student(session, run)
    teacher, labels, teacher_name = _load_teacher(session, project=project, run=run)
    service = Service(project_id=project.id, state=st, student=student, teacher=teacher, teacher_labels=labels,
                      log=open_request_log(project.id), escalate_to=escalate_to, max_concurrency=max_concurrency,
                      max_chars=max_chars, model={"training_run_id": run.id, "family": run.family,
                                                  "size": run.size, "labels": list(student.labels),
                                                  "teacher": teacher_name},
                      token_hashes=hashes, inline=InlineNgram.of(student))
    if micro_batch > 1:
        wait_s = batch_wait_ms / 1000
        if run.family != "ngram":
            service.student_batcher = Batcher(student.predict_proba, max_batch=micro_batch, max_wait_s=wait_s)
        if teacher_name == "local":  # an http teacher is one call per text anyway: batching would queue them
            service.teacher_batcher = Batcher(lambda texts: teacher.predict(texts, labels=labels),
                                              max_batch=micro_batch, max_wait_s=wait_s)
    return service


def served_student(path: Path):
    """A saved student's directory as the service holds it, the one choice (``stillroom serve`` and the
    benchmarks): an n-gram student read with numpy (the same probabilities as its torch module, a fifth of the
    time, and no torch in the process: about 180 MB less resident memory); any other through core.ml.lean (a
    transformer's checked ONNX export). The caller has checked the files' hashes."""
    if ArrayNgram.holds_ngram(path):
        return ArrayNgram.load(path)
    from core.ml import lean  # lazy: imports torch, which the CLI must not load before serving

    return lean.load_for_inference(path)


def _training_run(session: Session, st: RolloutState) -> TrainingRun:
    run_id = st.training_run_id
    if run_id is None and st.evaluation_id is not None:
        run_id = session.get(Evaluation, st.evaluation_id).training_run_id
    run = session.get(TrainingRun, run_id) if run_id else None
    if run is None:
        raise GovernanceViolation("the rollout names no trained student (its evaluation was of imported "
                                  "predictions): ship a student trained here to serve it.")
    return run


def _load_student(session: Session, run: TrainingRun):
    student = served_student(path_of(student_artifact(session, run)))  # student_artifact checks the hashes
    student.predict_proba(["warm up"])  # the first call pays for lazy set-up; not a request's latency
    return student


def _load_teacher(session: Session, *, project: Project, run: TrainingRun) -> tuple[Any, list[str], str]:
    """The fallback behind the student (core.rollout.fallback): its live teacher, the chosen endpoint, or None
    for a person's queue; refused while a file teacher's student has none chosen."""
    adapter, labels, name = fallback.serving_teacher(session, project=project, run=run)
    if name == "local":
        adapter.predict(["warm up"], labels=labels)  # loads the model now, once, not on the first request
    return adapter, labels, name


# --------------------------------------------------------------------------- requests


def error_sentence(exc: ValidationError, *, max_chars: int) -> tuple[str, str]:
    """The first validation problem as (field, one sentence naming it and the fix)."""
    err = exc.errors()[0]
    kind, loc = err["type"], [str(x) for x in err.get("loc", ())]
    name = ".".join(loc) or "body"
    if kind == "json_invalid":
        return "body", (f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')}): "
                        'send an object like {"text": "..."}.')
    if kind in ("model_type", "model_attributes_type"):
        return "body", 'the body must be a JSON object with a "text" field, like {"text": "..."}.'
    if kind == "missing":
        return name, f"field {name} is missing: send the text to classify as a string."
    if kind == "string_too_short":
        return name, f"field {name} is empty: send a non-empty string."
    if kind == "string_too_long":
        return name, f"field {name} is over {err['ctx']['max_length']} characters: send a shorter string."
    if kind == "string_type" and loc[:1] != ["slices"]:
        return name, f"field {name} must be a string, not {type(err['input']).__name__}."
    if kind == "dict_type" or loc[:1] == ["slices"]:
        return "slices", "field slices must be an object mapping each slice column to a string value."
    if kind == "extra_forbidden":
        return name, f"field {name} is not known: send only text, id and slices."
    return name, f"field {name}: {err['msg']}."


def _bad_request(fld: str, sentence: str) -> JSONResponse:
    return JSONResponse({"error": sentence, "field": fld}, status_code=400)


_FIELDS = frozenset(ClassifyRequest.model_fields)
_SLICE_VALUES = (str, int, float, bool)


class Asked(NamedTuple):
    """What ``classify`` reads of a request, as ``_usual`` found it valid (no model built: a microsecond each)."""

    text: str
    id: str | None
    slices: dict[str, str | int | float | bool] | None


def _usual(body: bytes) -> Asked | None:
    """The usual body read with orjson and checked by hand, a few microseconds less than the model's validation:
    a request it accepts is one ``ClassifyRequest`` accepts, with the same values. Anything else (not JSON,
    unknown or mistyped fields, an empty text, a long id, a value orjson reads differently) gets None, and the
    model's validation then names what is wrong in the usual sentence."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not data.keys() <= _FIELDS:
        return None
    text, rid, slices = data.get("text"), data.get("id"), data.get("slices")
    if type(text) is not str or not text:
        return None
    if rid is not None and (type(rid) is not str or not 0 < len(rid) <= MAX_ID_CHARS):
        return None
    if slices is not None and (type(slices) is not dict or not all(map(_plain_value, slices.values()))):
        return None
    return Asked(text, rid, slices)


def _plain_value(value: Any) -> bool:
    """A slice value both readers read alike: orjson reads an integer past 64 bits as a float, pydantic as an int."""
    kind = type(value)
    return kind in _SLICE_VALUES and (kind is not float or abs(value) < 2**63)


def _parse(body: bytes, max_chars: int) -> ClassifyRequest | Asked | JSONResponse:
    req: ClassifyRequest | Asked | None = _usual(body)
    if req is None:
        try:
            req = ClassifyRequest.model_validate_json(body)
        except ValidationError as exc:
            return _bad_request(*error_sentence(exc, max_chars=max_chars))
    if len(req.text) > max_chars:
        return _bad_request("text", f"field text has {len(req.text):,} characters, over the limit of "
                                    f"{max_chars:,}: send a shorter text.")
    return req


def _ask_teacher(service: Service, text: str):
    return service.teacher.predict([text], labels=service.teacher_labels)[0]


async def _student_answer(service: Service, text: str) -> tuple[str, float]:
    """The student's label for one text and its probability: inline (a fraction of a millisecond), or in a
    micro-batch."""
    if service.student_batcher is None:
        probs = service.student.predict_proba([text])[0]
    else:
        probs = await service.student_batcher(text)
    k = int(probs.argmax())
    return service.student.labels[k], float(probs[k])


async def _teacher_answer(service: Service, text: str):
    if service.teacher_batcher is None:
        return await run_in_threadpool(_ask_teacher, service, text)
    return await service.teacher_batcher(text)


async def classify(service: Service, req: ClassifyRequest | Asked) -> tuple[dict, int]:
    """Route one request, answer it, log it; the log line is written before the answer leaves."""
    start = time.perf_counter()
    st = service.state
    if service.inline is not None:  # an n-gram student: no await, no array
        k, s_conf = service.inline.answer(req.text)
        s_label = service.student.labels[k]
    else:
        s_label, s_conf = await _student_answer(service, req.text)
    request_id = req.id or service.new_request_id()
    text_hash = hashlib.sha256(req.text.encode("utf-8"))  # the bucket's key when the client sends no id, and logged
    position = router.bucket_of(text_hash.digest()) if req.id is None else router.bucket(req.id)
    decision = router.route(st, bucket=position, student_label=s_label, student_confidence=s_conf,
                            draw=service.rng.random(), escalate_to=service.escalate_to)
    teacher = None
    if decision.ask_teacher:
        try:
            teacher = await _teacher_answer(service, req.text)
        except Exception as exc:  # noqa: BLE001  (a failing teacher must not lose the request's log line)
            if decision.served_by == "teacher":
                _write(service, req, request_id, s_label, s_conf, decision, None, start, text_hash)
                return {"error": f"the teacher did not answer ({type(exc).__name__}): retry shortly."}, 503
    if decision.served_by == "student":
        label, conf = s_label, s_conf
    elif decision.served_by == "teacher":
        label, conf = teacher.label, teacher.confidence
    else:
        label, conf = None, None  # a person answers from the queue
    _write(service, req, request_id, s_label, s_conf, decision, teacher, start, text_hash)
    return {"label": label, "confidence": conf, "served_by": decision.served_by, "stage": st.stage,
            "request_id": request_id}, 200


def _write(service: Service, req: ClassifyRequest | Asked, request_id: str, s_label: str, s_conf: float,
           decision: router.Route, teacher, start: float, text_hash: Any) -> None:
    service.log.write({
        "request_id": request_id,
        "input_sha256": text_hash.hexdigest(),
        "input_chars": len(req.text),
        "slices": {str(k): str(v) for k, v in (req.slices or {}).items()},
        "stage": service.state.stage, "served_by": decision.served_by,
        "student_label": s_label, "student_confidence": round(s_conf, 6),
        "teacher_label": teacher.label if teacher is not None else None,
        "teacher_asked": decision.ask_teacher, "reason": decision.reason,
        "latency_ms": round((time.perf_counter() - start) * 1000, 3),
    })


# --------------------------------------------------------------------------- the app


class Refused(Exception):
    """A request turned away before it took a slot: the HTTP status, the field and the sentence."""

    def __init__(self, status: int, fld: str, sentence: str):
        super().__init__(sentence)
        self.status, self.field, self.sentence = status, fld, sentence


def check_token(service: Service, authorization: str | None) -> None:
    """Refused(401) unless the Authorization header carries one of the project's unrevoked serving tokens."""
    hashes = service.token_hashes
    if hashes is None:
        return
    accepted = getattr(service, "accepted_headers", None)
    if accepted is not None and accepted.get(authorization) is hashes:
        return  # this header passed against this very set of hashes: no need to hash it again
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Refused(401, "authorization", "send a serving token as 'Authorization: Bearer TOKEN' (an operator "
                                            "creates one with `stillroom serve-token create`).")
    if hashlib.sha256(secret.strip().encode("utf-8")).hexdigest() not in hashes:
        raise Refused(401, "authorization", "the serving token is unknown or revoked: ask the operator for a "
                                            "valid one.")
    if accepted is not None and len(accepted) < MAX_ACCEPTED_HEADERS:
        accepted[authorization] = hashes  # only accepted headers are kept: a stream of forged ones cannot grow it


class BodyDeadlines:
    """The body reads in progress, each with the moment it must have ended. One timer, due every ``tick`` seconds
    while any read is pending, cancels the late ones: a dictionary entry per request rather than an
    ``asyncio.timeout``'s own timer set and cleared per request (a twentieth of the service's time per request).
    A read is cut off at most a tick after its deadline; the tick is a quarter of the timeout, at most 0.25 s."""

    def __init__(self) -> None:
        self.pending: dict[asyncio.Task, float] = {}
        self.late: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self.pending[task] = loop.time() + timeout_s
        if self._timer is None or self._loop is not loop:  # tests run each client in a fresh loop
            self._loop, tick = loop, min(0.25, timeout_s / 4)
            self._timer = loop.call_later(tick, self._reap, tick)

    def end(self, task: asyncio.Task) -> bool:
        """Forget the task's read; whether it was cancelled for being late."""
        self.pending.pop(task, None)
        if task in self.late:
            self.late.discard(task)
            return True
        return False

    def _reap(self, tick: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for task, deadline in list(self.pending.items()):
            if deadline <= now and task not in self.late:
                self.late.add(task)
                task.cancel()
        self._timer = self._loop.call_later(tick, self._reap, tick) if self.pending else None


async def read_body(service: Service, receive: Receive, declared: str | None, *,
                    deadlines: BodyDeadlines | None = None) -> bytes:
    """The whole body from the ASGI ``receive``, or Refused: 413 past ``max_body_bytes`` (from the declared
    Content-Length unread, or while streaming), 408 when it has not arrived within ``read_timeout_s``;
    ClientDisconnect when the client hangs up first. ``deadlines`` keeps the time limit (else an
    ``asyncio.timeout`` does)."""
    cap = service.max_body_bytes
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        raise Refused(413, "body", f"the body is {int(declared):,} bytes, over the {cap:,} accepted: field text "
                                   f"may hold at most {service.max_chars:,} characters.")
    if deadlines is None:
        try:
            async with asyncio.timeout(service.read_timeout_s):
                return await _receive_all(service, receive)
        except TimeoutError:
            raise _late(service) from None
    if _arrived(receive):  # the server holds the whole body already: reading it cannot wait on the client
        return await _receive_all(service, receive)
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task, service.read_timeout_s)
    try:
        return await _receive_all(service, receive)
    except asyncio.CancelledError:
        if deadlines.end(task):  # cancelled by the deadline, not by the server stopping
            task.uncancel()
            raise _late(service) from None
        raise
    finally:
        deadlines.end(task)


def _late(service: Service) -> Refused:
    return Refused(408, "body", f"the body did not arrive within {service.read_timeout_s:g} s: send the whole "
                                "request at once.")


def _arrived(receive: Receive) -> bool:
    """Whether uvicorn has the request's whole body already: ``receive`` is its request cycle's method, whose
    ``more_body`` turns False once the message is complete (and stays True while an ``Expect: 100-continue``
    client waits). Any other ``receive`` counts as not arrived and gets the deadline."""
    return getattr(getattr(receive, "__self__", None), "more_body", True) is False


async def _receive_all(service: Service, receive: Receive) -> bytes:
    cap = service.max_body_bytes
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise Refused(413, "body", f"the body passed {cap:,} bytes: field text may hold at most "
                                       f"{service.max_chars:,} characters.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def note_refusal(service: Service, request: Request, status: int | None, fld: str, sentence: str) -> None:
    """Count a request turned away and write its line to the refusal log (``status`` None: the client left)."""
    service.refused["disconnected" if status is None else str(status)] += 1
    service.refused_log.write({"status": status, "field": fld, "error": sentence,
                               "client": request.client.host if request.client else None,
                               "path": request.url.path})


def refuse(service: Service, request: Request, status: int | None, fld: str, sentence: str) -> Response:
    """Count and log a request turned away, then answer it (with ``Connection: close`` when its body is unread)."""
    note_refusal(service, request, status, fld, sentence)
    if status is None:  # the client went away: nobody is left to read an answer
        return Response(status_code=400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status in (408, 413):
        headers["Connection"] = "close"
    return JSONResponse({"error": sentence, "field": fld}, status_code=status, headers=headers)


async def _send_json(send: Send, body: dict, status: int) -> None:
    """What JSONResponse sends (compact UTF-8 JSON), without building one and encoded by orjson: the hot path
    answers thousands of these a second."""
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class ClassifyEndpoint:
    """``POST /v1/classify`` on plain ASGI: the hot path reads the two headers it needs from the scope and
    answers without Starlette's Request and Response objects (a sizeable share of a request's cost at thousands
    a second); the rare refusals still build them."""

    def __init__(self, service: Service):
        self.service = service
        self.active = 0  # requests holding a slot (one event loop: a count does what a semaphore would)
        self.deadlines = BodyDeadlines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        authorization = declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        try:
            check_token(service, authorization)
            # Read before taking a slot: a slow or oversized body can hold neither a slot nor memory.
            raw = await read_body(service, receive, declared, deadlines=self.deadlines)
        except Refused as exc:
            return await refuse(service, Request(scope), exc.status, exc.field, exc.sentence)(scope, receive, send)
        except ClientDisconnect:
            return await refuse(service, Request(scope), None, "body",
                                "the client disconnected before sending the whole body.")(scope, receive, send)
        if self.active >= service.max_concurrency:
            return await refuse(service, Request(scope), 503, "service",
                                f"the service is answering {service.max_concurrency} requests already: retry "
                                "shortly.")(scope, receive, send)
        self.active += 1
        try:
            parsed = _parse(raw, service.max_chars)
            if isinstance(parsed, JSONResponse):
                problem = json.loads(parsed.body)
                note_refusal(service, Request(scope), 400, problem["field"], problem["error"])
                return await parsed(scope, receive, send)
            body, status = await classify(service, parsed)
            if status != 200:
                note_refusal(service, Request(scope), status, "teacher", body["error"])
        finally:
            self.active -= 1
        await _send_json(send, body, status)


def build_app(service: Service) -> ASGIApp:
    """The service's ASGI app: ``POST /v1/classify`` goes straight to its endpoint, everything else (``/health``,
    404, 405, the lifespan that runs the refresh loop) through Starlette."""
    endpoint = ClassifyEndpoint(service)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "project_id": service.project_id, "stage": service.state.stage,
                             "percent": service.state.percent, "model": service.model,
                             "auth": service.token_hashes is not None,
                             "refused": dict(sorted(service.refused.items())),
                             "uptime_s": round(time.monotonic() - service.started, 3),
                             # Each worker process answers for itself: its pid, its counts, its batches.
                             "worker_pid": os.getpid(), "workers": service.workers,
                             "micro_batching": service.batching()})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        task = asyncio.create_task(_refresh_loop(service)) if service.refresh or service.refresh_tokens else None
        try:
            yield
        finally:
            if task:
                task.cancel()
            for batcher in (service.student_batcher, service.teacher_batcher):
                if batcher is not None:
                    batcher.close()
            service.log.close()
            service.refused_log.close()

    # An endpoint that is not a function is an ASGI app to Starlette: the route gives other methods their 405.
    routes = Starlette(routes=[HttpRoute("/health", health, methods=["GET"]),
                               HttpRoute("/v1/classify", endpoint, methods=["POST"])], lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/classify" and scope["method"] == "POST":
            await endpoint(scope, receive, send)
        else:
            await routes(scope, receive, send)

    return app


async def _refresh_loop(service: Service) -> None:
    """Follow the operator's advances, rollbacks and token revocations without a restart (the student itself
    stays loaded)."""
    while True:
        await asyncio.sleep(service.refresh_s)
        if service.refresh_tokens is not None and service.token_hashes is not None:
            try:
                service.token_hashes = await run_in_threadpool(service.refresh_tokens)
            except Exception:  # noqa: BLE001,S110  (a busy database keeps the last known tokens)
                pass
        if service.refresh is None:
            continue
        try:
            new = await run_in_threadpool(service.refresh)
        except Exception:  # noqa: BLE001,S112  (a busy database keeps the last known state)
            continue
        if new.training_run_id in (None, service.model.get("training_run_id")):
            service.state = new  # a new student needs a restart; until then the loaded one keeps its state


def state_reader(project_id: int) -> Callable[[], RolloutState]:
    """A function that reads the project's rollout state in a fresh session (for the refresh loop)."""
    def read() -> RolloutState:
        with Session(get_engine()) as session:
            return rollout_state(session, project_id=project_id)

    return read


def token_reader(project_id: int) -> Callable[[], frozenset[str]]:
    """A function that reads the project's unrevoked serving tokens in a fresh session (revocation takes effect
    within one refresh period)."""
    def read() -> frozenset[str]:
        with Session(get_engine()) as session:
            return active_serve_hashes(session, project_id=project_id)

    return read
