"""The remote teacher: an OpenAI-compatible ``/chat/completions`` endpoint.

The API key comes from the environment (or from the caller, e.g. Streamlit
secrets) and lives only in this object's HTTP client: it is never part of the
settings recorded with a run, never cached and never logged. The endpoint and
the variable the key is read from must be on the admin's allow-lists
(``STILLROOM_TEACHER_ENDPOINTS``, ``STILLROOM_TEACHER_KEY_VARS``), so a run's
settings cannot send a server secret to a host of the driver's choosing; and a
failed call is recorded as its HTTP status and a fixed sentence, never the body
the endpoint sent (which may echo the key, whole or disguised), so nothing it
says reaches a job's error, a log or the audit log. Every answer is cached on disk under the
project's artifacts folder, keyed by every request parameter that changes it
(endpoint, model, prompt, temperature, max tokens, log-probability settings), so
a rerun never pays twice and a changed request is never answered from the cache.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.domain.errors import GovernanceViolation, InvalidInput, StillroomError
from core.domain.hashing import canonical_json, sha256_hex
from core.domain.urls import RETRY_STATUS, Refusal, public_url, refusal
from core.store.config import get_settings
from core.teacher.outputs import Prediction, Progress, require_listed

DEFAULT_API_KEY_ENV = "STILLROOM_TEACHER_API_KEY"
DEFAULT_BASE_URL_ENV = "STILLROOM_TEACHER_BASE_URL"
DEFAULT_TEMPLATE = (
    "Classify the text into exactly one of these labels: {labels}.\n"
    "Answer with the label only.\n\n"
    "Text: {text}"
)


class ChatConfig(BaseModel):
    """The non-secret settings of a chat-completions teacher (recorded with the run)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = None  # including the version prefix, e.g. https://host/v1; default: $base_url_env
    base_url_env: str = DEFAULT_BASE_URL_ENV
    api_key_env: str = DEFAULT_API_KEY_ENV
    prompt_template: str = DEFAULT_TEMPLATE
    labels: list[str] | None = None  # default: the dataset's label set
    concurrency: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0, le=60)
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_tokens: int = Field(default=16, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0, le=2)
    logprobs: bool = True
    top_logprobs: int = Field(default=5, ge=0, le=20)
    price_in_per_1k: float = Field(default=0.0, ge=0)  # currency per 1,000 input tokens
    price_out_per_1k: float = Field(default=0.0, ge=0)
    max_cost: float | None = Field(default=None, ge=0)  # the budget cap for the calls this run makes

    @field_validator("prompt_template")
    @classmethod
    def _has_placeholders(cls, value: str) -> str:
        missing = [p for p in ("{labels}", "{text}") if p not in value]
        if missing:
            raise ValueError(f"the prompt template lacks {' and '.join(missing)}; put them where the label list "
                             "and the input text go")
        return value

    @field_validator("api_key_env", "base_url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("name an environment variable (letters, digits and _), not its value")
        return value

    def render(self, text: str, labels: Sequence[str]) -> str:
        # str.replace, not str.format: templates may hold other braces (JSON examples).
        return self.prompt_template.replace("{labels}", ", ".join(labels)).replace("{text}", text)


# --------------------------------------------------------------------------- allow-lists


def check_key_var(api_key_env: str) -> None:
    """GovernanceViolation unless the admin listed ``api_key_env`` in STILLROOM_TEACHER_KEY_VARS."""
    require_listed(api_key_env, what="the API key variable", setting="STILLROOM_TEACHER_KEY_VARS",
                   allowed=get_settings().teacher_key_vars)


def check_endpoint(base_url: str, *, source: str = "--base-url") -> str:
    """The base URL as called, or GovernanceViolation unless it is on STILLROOM_TEACHER_ENDPOINTS exactly.

    ``source`` names where the URL came from; a URL read from a variable is not echoed (the variable might hold
    anything).
    """
    allowed = {public_url(u) for u in get_settings().teacher_endpoints}
    shown = f"{public_url(base_url)!r}" if source == "--base-url" else f"in ${source}"
    why = refusal(base_url, allowed)
    if why == Refusal.SHAPE:
        raise GovernanceViolation(f"the teacher base URL {shown} carries user info, a query or a fragment: give "
                                  "it as scheme://host[:port]/path, exactly as the admin listed it.")
    if why == Refusal.UNLISTED:
        listed = ", ".join(sorted(allowed)) or "none"
        raise GovernanceViolation(f"the teacher endpoint {shown} is not on the admin's list "
                                  f"(STILLROOM_TEACHER_ENDPOINTS: {listed}): use a listed endpoint, or ask the "
                                  "admin who runs the server to add it.")
    return public_url(base_url)


class BudgetExceeded(GovernanceViolation):
    """The run reached its cost cap; answers received so far are cached."""


class TeacherUnavailable(StillroomError):
    """The endpoint failed in a way retrying did not cure."""


def request_key(config: ChatConfig, base_url: str, prompt: str) -> str:
    """The cache key: every request parameter that changes the answer (the key and the budget do not)."""
    return sha256_hex(canonical_json({
        "base_url": public_url(base_url) if base_url else "", "model": config.model, "prompt": prompt,
        "temperature": config.temperature, "max_tokens": config.max_tokens, "logprobs": config.logprobs,
        "top_logprobs": config.top_logprobs if config.logprobs else 0}))


# --------------------------------------------------------------------------- cost


def estimate_tokens(text: str) -> int:
    """About four characters per token: good enough to budget before any call is made."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True)
class CostEstimate:
    rows: int
    cached: int  # answered before: free
    calls: int  # distinct prompts still to send
    input_tokens: int
    output_tokens: int
    cost: float
    max_cost: float | None

    @property
    def within_budget(self) -> bool:
        return self.max_cost is None or self.cost <= self.max_cost

    def sentence(self) -> str:
        cap = "no cap" if self.max_cost is None else f"cap {self.max_cost:.2f}"
        return (f"{self.rows:,} rows: {self.cached:,} answered before (cached, free), {self.calls:,} calls to make, "
                f"about {self.input_tokens:,} input and {self.output_tokens:,} output tokens, estimated cost "
                f"{self.cost:.4f} ({cap}).")


def _call_estimate(config: ChatConfig, prompt: str, labels: Sequence[str]) -> tuple[int, int]:
    out = min(config.max_tokens, max(estimate_tokens(label) for label in labels) + 1)
    return estimate_tokens(prompt), out


def _cost(config: ChatConfig, tokens_in: int, tokens_out: int) -> float:
    return tokens_in / 1000 * config.price_in_per_1k + tokens_out / 1000 * config.price_out_per_1k


class _Budget:
    """Spend so far, shared by the worker threads; a call reserves its estimate before it is sent."""

    def __init__(self, cap: float | None):
        self.cap, self.spent, self.reserved, self.refused = cap, 0.0, 0.0, False
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> bool:
        with self._lock:
            if self.cap is not None and self.spent + self.reserved + amount > self.cap:
                self.refused = True
                return False
            self.reserved += amount
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self.reserved -= reserved
            self.spent += actual


# --------------------------------------------------------------------------- cache


class ResponseCache:
    """Answers on disk, keyed by the sha256 of everything sent that changes the answer (``request_key``); SQLite
    so an interrupted run keeps what it got. Safe across threads: ``stillroom serve`` asks the teacher from its
    thread pool, not the thread that opened the cache."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answer (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "body TEXT NOT NULL, created_at REAL NOT NULL)")
        self._db.commit()

    @staticmethod
    def key(config: ChatConfig, base_url: str, prompt: str) -> str:
        return request_key(config, base_url, prompt)

    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            with self._lock:
                rows = self._db.execute(f"SELECT key, body FROM answer WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall()
            found.update((k, json.loads(body)) for k, body in rows)
        return found

    def put(self, key: str, model: str, body: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answer VALUES (?, ?, ?, ?)",
                             (key, model, json.dumps(body), time.time()))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


# --------------------------------------------------------------------------- parsing


def parse_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label an answer names: exact, then case-insensitive, then the first label mentioned."""
    text = answer.strip().strip("\"'`*.:;!").strip()
    if text in labels:
        return text
    lowered = {label.lower(): label for label in labels}
    if text.lower() in lowered:
        return lowered[text.lower()]
    best: tuple[int, int, str] | None = None
    for label in labels:
        m = re.search(rf"(?<!\w){re.escape(label.lower())}(?!\w)", answer.lower())
        if m and (best is None or (m.start(), -len(label)) < best[:2]):
            best = (m.start(), -len(label), label)
    return best[2] if best else None


def label_distribution(logprobs: dict | None, labels: Sequence[str]) -> list[float] | None:
    """Probabilities over the labels from the first answer token's top alternatives, where the server gave them.

    An alternative counts for a label when it is the label or the start of exactly one label; the mass is
    renormalised over the labels (tokens naming no label are left out).
    """
    content = (logprobs or {}).get("content") or []
    first = next((t for t in content if str(t.get("token", "")).strip()), None)
    if first is None:
        return None
    alternatives = first.get("top_logprobs") or [{"token": first.get("token"), "logprob": first.get("logprob")}]
    mass = [0.0] * len(labels)
    lowered = [label.lower() for label in labels]
    for alt in alternatives:
        token = str(alt.get("token") or "").strip().lower()
        if not token or alt.get("logprob") is None:
            continue
        hits = [i for i, label in enumerate(lowered) if label == token]
        hits = hits or [i for i, label in enumerate(lowered) if label.startswith(token)]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(float(alt["logprob"]))
    total = sum(mass)
    return [m / total for m in mass] if total > 0 else None


def to_prediction(body: dict, labels: Sequence[str]) -> Prediction:
    content = body.get("content") or ""
    label = parse_label(content, labels)
    if label is None:
        return Prediction(label=None, confidence=None, probs=None, raw=content)
    probs = label_distribution(body.get("logprobs"), labels)
    if probs is None or probs[list(labels).index(label)] <= 0:
        return Prediction(label=label, confidence=None, probs=None, raw=content)
    return Prediction(label=label, confidence=probs[list(labels).index(label)], probs=probs, raw=content)


# --------------------------------------------------------------------------- the adapter


@dataclass
class CallStats:
    calls: int = 0  # HTTP requests sent, retries included
    answered: int = 0  # prompts answered by the endpoint in this run
    cache_hits: int = 0
    retries: int = 0
    spent: float = 0.0
    usage_in: int = 0
    usage_out: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return {"calls": self.calls, "answered": self.answered, "cache_hits": self.cache_hits,
                "retries": self.retries, "spent": round(self.spent, 6), "usage_in": self.usage_in,
                "usage_out": self.usage_out}


class ChatAdapter:
    """Asks the endpoint once per distinct uncached prompt, ``concurrency`` requests at a time."""

    name = "http"

    def __init__(self, config: ChatConfig, *, base_url: str, api_key: str, cache: ResponseCache,
                 base_url_source: str = "--base-url", dry_run: bool = False):
        if not dry_run:
            # Checked here, where the key is attached: no other path sends it anywhere.
            check_key_var(config.api_key_env)
            base_url = check_endpoint(base_url, source=base_url_source)
            if not api_key:
                raise InvalidInput(f"no API key for the teacher endpoint: set ${config.api_key_env} in the "
                                   "environment the run starts from.", field="api_key")
        self.config, self.cache, self.base_url = config, cache, base_url
        self.endpoint = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.stats = CallStats()

    def _key(self, prompt: str) -> str:
        return request_key(self.config, self.base_url, prompt)

    def estimate(self, texts: Sequence[str], *, labels: Sequence[str]) -> CostEstimate:
        prompts = {self._key(p): p for p in (self.config.render(t, labels) for t in texts)}
        cached = self.cache.get_many(list(prompts))
        todo = [p for k, p in prompts.items() if k not in cached]
        tokens = [_call_estimate(self.config, p, labels) for p in todo]
        t_in, t_out = sum(t[0] for t in tokens), sum(t[1] for t in tokens)
        rendered = [self._key(self.config.render(t, labels)) for t in texts]
        return CostEstimate(rows=len(texts), cached=sum(k in cached for k in rendered), calls=len(todo),
                            input_tokens=t_in, output_tokens=t_out, cost=_cost(self.config, t_in, t_out),
                            max_cost=self.config.max_cost)

    def predict(self, texts: Sequence[str], *, labels: list[str], progress: Progress | None = None
                ) -> list[Prediction]:
        keys = [self._key(self.config.render(t, labels)) for t in texts]
        answers = self.cache.get_many(keys)
        self.stats.add(cache_hits=sum(k in answers for k in keys))
        todo = {k: self.config.render(t, labels) for k, t in zip(keys, texts, strict=True) if k not in answers}
        if todo:
            self._ask_all(todo, answers, labels, total=len(set(keys)), progress=progress)
        return [to_prediction(answers[k], labels) for k in keys]

    def _ask_all(self, todo: dict[str, str], answers: dict[str, dict], labels: Sequence[str], *, total: int,
                 progress: Progress | None) -> None:
        import httpx

        budget, stop = _Budget(self.config.max_cost), threading.Event()
        failure: BaseException | None = None
        limits = httpx.Limits(max_connections=self.config.concurrency)
        with httpx.Client(headers=self._headers, timeout=self.config.timeout_s, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self._ask, client, prompt, labels, budget, stop): key
                       for key, prompt in todo.items()}
            for fut in as_completed(futures):
                try:
                    body = fut.result()
                except BaseException as exc:  # noqa: BLE001 (stop the others, keep what is cached, then raise)
                    failure = failure or exc
                    stop.set()
                    continue
                if body is None:
                    continue
                # Written at once: an interrupted or capped run keeps every answer it paid for.
                self.cache.put(futures[fut], self.config.model, body)
                answers[futures[fut]] = body
                if progress:
                    progress(len(answers) / total, f"{len(answers):,} of {total:,} prompts answered")
        self.stats.spent = budget.spent
        if failure is not None:
            raise failure
        if budget.refused:
            raise BudgetExceeded(
                f"The teacher run stopped at its budget cap of {self.config.max_cost:.2f}: {len(answers):,} of "
                f"{total:,} prompts are answered (spent about {budget.spent:.4f}, all cached, so they are not paid "
                "again); raise --max-cost to finish the rest."
            )

    def _ask(self, client, prompt: str, labels: Sequence[str], budget: _Budget, stop: threading.Event) -> dict | None:
        if stop.is_set():
            return None
        t_in, t_out = _call_estimate(self.config, prompt, labels)
        estimate = _cost(self.config, t_in, t_out)
        if not budget.reserve(estimate):
            stop.set()
            return None
        try:
            body = self._post_with_retries(client, prompt)
        except BaseException:
            stop.set()  # here, not in the collecting thread: the next queued prompt must not be sent
            budget.settle(estimate, 0.0)
            raise
        usage = body.get("usage") or {}
        u_in, u_out = int(usage.get("prompt_tokens") or t_in), int(usage.get("completion_tokens") or t_out)
        budget.settle(estimate, _cost(self.config, u_in, u_out))
        self.stats.add(answered=1, usage_in=u_in, usage_out=u_out)
        return body

    def _payload(self, prompt: str) -> dict:
        payload = {"model": self.config.model, "messages": [{"role": "user", "content": prompt}],
                   "max_tokens": self.config.max_tokens, "temperature": self.config.temperature}
        if self.config.logprobs:
            payload["logprobs"] = True
            if self.config.top_logprobs:
                payload["top_logprobs"] = self.config.top_logprobs
        return payload

    def _post_with_retries(self, client, prompt: str) -> dict:
        import httpx

        where = public_url(self.endpoint)
        for attempt in range(self.config.max_retries + 1):
            last = attempt == self.config.max_retries
            self.stats.add(calls=1)
            try:
                response = client.post(self.endpoint, json=self._payload(prompt))
            except httpx.HTTPError as exc:
                if last:
                    raise TeacherUnavailable(
                        f"the teacher endpoint {where} could not be reached after {attempt + 1} tries "
                        f"({type(exc).__name__}): check the base URL and try again; answers so far are cached."
                    ) from None
                self._wait(attempt, None)
                continue
            if response.status_code in RETRY_STATUS and not last:
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code != 200:
                raise TeacherUnavailable(self._refusal(response, where, attempt))
            return _answer_body(response, where)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.stats.add(retries=1)
        delay = self.config.backoff_s * (2 ** attempt)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 60.0))
            except ValueError:
                pass
        time.sleep(delay)

    def _refusal(self, response, where: str, attempt: int) -> str:
        # The status code and a fixed sentence only: the body may echo the key in any disguise.
        code = response.status_code
        if code in (401, 403):
            return f"the teacher endpoint {where} refused the API key (HTTP {code}): check ${self.config.api_key_env}."
        if code in RETRY_STATUS:
            return (f"the teacher endpoint {where} still answered HTTP {code} after {attempt + 1} tries: try again "
                    "later or lower --concurrency; answers so far are cached.")
        return f"the teacher endpoint {where} answered HTTP {code}: check the model name and the endpoint."


def _answer_body(response, where: str) -> dict:
    """What is kept of an answer: its text, its token log-probabilities and the token usage."""
    try:
        data = response.json()
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        return {"content": content, "logprobs": choice.get("logprobs"), "usage": data.get("usage"),
                "finish_reason": choice.get("finish_reason")}
    except Exception:  # noqa: BLE001 (whatever the body is, only the fixed sentence leaves this function)
        raise TeacherUnavailable(f"the teacher endpoint {where} answered HTTP {response.status_code} with something "
                                 "that is not a chat completion: check that it is OpenAI-compatible.") from None
