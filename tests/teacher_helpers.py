"""Shared helpers for the teacher tests: a dataset row made directly, and a tiny saved classifier."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from sqlmodel import Session

from core.access import projects
from core.demo import seed as demo_mod
from core.store import artifacts
from core.store.models import Dataset, Project, User

LABELS = ["billing", "technical", "account"]
WORDS = {
    "billing": "my invoice was charged twice please refund the payment",
    "technical": "the app crashes with an error when I open settings",
    "account": "I cannot log in to my account password reset fails",
}


def ticket_rows(n: int = 30) -> pd.DataFrame:
    """``n`` tickets cycling through the labels; every third row has no reference."""
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        rows.append({"id": f"T{i:04d}", "text": f"{WORDS[label]} (ticket {i}){' again' * (i % 5)}",
                     "reference": None if i % 3 == 2 else label, "queue": label})
    return pd.DataFrame(rows)


def routing(session: Session) -> Project:
    return projects.get_project(session, demo_mod.ROUTING)


def make_dataset(session: Session, *, actor: User, project: Project, df: pd.DataFrame | None = None,
                 labels: list[str] | None = None) -> Dataset:
    df = ticket_rows() if df is None else df
    art = artifacts.store_table(session, project=project, actor=actor, df=df, kind="inputs")
    dataset = Dataset(project_id=project.id, name="tickets", purpose="prompts", artifact_id=art.id,
                      operation="import", n_rows=len(df), created_by=actor.id,
                      mapping={"id": "id", "text": "text", "reference": "reference", "slices": ["queue"],
                               "timestamp": None, "labels": labels or LABELS, "source": "tickets.csv",
                               "format": "csv"})
    session.add(dataset)
    session.commit()
    return dataset


def save_tiny_classifier(path: Path, *, labels: list[str] = LABELS, texts: list[str] | None = None) -> Path:
    """A randomly initialised 1-layer classifier and its tokenizer, saved like a real teacher."""
    from core.ml.build import build_classifier, train_tokenizer

    tokenizer = train_tokenizer(texts or list(WORDS.values()) * 4, vocab_size=200, max_length=64)
    model = build_classifier("tiny", labels=labels, vocab_size=len(tokenizer), max_length=64)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- a chat-completions server


KEYWORDS = {"invoice": "billing", "crashes": "technical", "log in": "account"}


class FakeChatServer:
    """A real OpenAI-compatible endpoint on 127.0.0.1, answering from keywords, counting calls.

    ``fail_first`` requests are answered with ``fail_status`` before it answers normally;
    ``logprobs`` False leaves token log-probabilities out; ``delay_s`` holds each answer.
    """

    def __init__(self, *, fail_first: int = 0, fail_status: int = 429, logprobs: bool = True,
                 delay_s: float = 0.0, always_status: int | None = None):
        import threading
        from http.server import ThreadingHTTPServer

        self.fail_first, self.fail_status, self.logprobs = fail_first, fail_status, logprobs
        self.delay_s, self.always_status = delay_s, always_status
        self.calls, self.in_flight, self.max_in_flight = 0, 0, 0
        self.auth_headers: set[str] = set()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        # The admin's allow-list names this endpoint while it runs (STILLROOM_TEACHER_ENDPOINTS), as an admin
        # would name a real one; the variable reaches CLI subprocesses too.
        from core.store.config import get_settings

        self._endpoints_before = os.environ.get("STILLROOM_TEACHER_ENDPOINTS")
        os.environ["STILLROOM_TEACHER_ENDPOINTS"] = self.base_url
        get_settings.cache_clear()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        from core.store.config import get_settings

        self.httpd.shutdown()
        self.httpd.server_close()
        if self._endpoints_before is None:
            os.environ.pop("STILLROOM_TEACHER_ENDPOINTS", None)
        else:
            os.environ["STILLROOM_TEACHER_ENDPOINTS"] = self._endpoints_before
        get_settings.cache_clear()

    def answer(self, prompt: str) -> dict:
        import math

        text = prompt.rsplit("Text:", 1)[-1]
        label = next((lab for word, lab in KEYWORDS.items() if word in text), None)
        content = "I would rather not say" if label is None else f"{label.capitalize()}."
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        if self.logprobs and label:
            other = next(lab for lab in LABELS if lab != label)
            top = [{"token": label.capitalize(), "logprob": math.log(0.8)},
                   {"token": other, "logprob": math.log(0.15)}, {"token": " The", "logprob": math.log(0.05)}]
            choice["logprobs"] = {"content": [{"token": label.capitalize(), "logprob": math.log(0.8),
                                               "top_logprobs": top}]}
        return {"id": "cmpl-1", "object": "chat.completion", "model": "fake", "choices": [choice],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 2}}


def _handler_for(server: FakeChatServer):
    import json
    import time
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server.lock:
                server.calls += 1
                n = server.calls
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                server.auth_headers.add(self.headers.get("Authorization", ""))
                server.requests.append(body)
            try:
                time.sleep(server.delay_s)
                status = server.always_status or (server.fail_status if n <= server.fail_first else 200)
                if self.path != "/v1/chat/completions":
                    status = 404
                payload = server.answer(body["messages"][0]["content"]) if status == 200 else {
                    "error": {"message": "slow down", "type": "rate_limit"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                with server.lock:
                    server.in_flight -= 1

    return Handler
