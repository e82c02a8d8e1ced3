"""A real local HTTP receiver for the webhook tests (http.server in a thread), and the allow-list set for it.
A plugin of tests/conftest.py: every test stops the webhook senders it started, since its database goes away."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET_PATH = "/services/T0001/B0001/s3cr3t-t0k3n-in-the-path"


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (the last one repeats) and keeps what came."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    posts: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.posts


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.times.append(time.monotonic())
            receiver.posts.append({"path": self.path, "json": json.loads(raw),
                                   "content_type": self.headers.get("Content-Type")})
            status = receiver.statuses[min(len(receiver.posts), len(receiver.statuses)) - 1]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"echo of a secret the receiver should never see logged")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve() -> tuple[Receiver, ThreadingHTTPServer]:
    """A receiver listening on a free loopback port, its URL carrying a secret in the path as Slack's do."""
    holder = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(holder))
    holder.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder, server


@pytest.fixture
def receiver(monkeypatch):
    """A local receiver whose URL is on STILLROOM_WEBHOOK_URLS, with a short backoff so retries happen within a
    test."""
    from core.store import config

    holder, server = serve()
    monkeypatch.setenv("STILLROOM_WEBHOOK_URLS", holder.url)
    monkeypatch.setenv("STILLROOM_WEBHOOK_BACKOFF_S", "0.2")
    monkeypatch.setenv("STILLROOM_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("STILLROOM_APP_URL", "https://stillroom.example")
    config.get_settings.cache_clear()
    yield holder
    server.shutdown()
    server.server_close()
    config.get_settings.cache_clear()


def wait_until(predicate, timeout: float = 15.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(autouse=True)
def _stop_webhook_senders():
    yield
    from core.notify import delivery

    delivery.stop_all()
