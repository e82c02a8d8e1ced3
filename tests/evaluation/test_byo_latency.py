"""An imported student's latency: measured here through its HTTP endpoint like Stillroom's own students, or
declared with evidence that must be complete."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from core.domain.errors import InvalidInput
from core.evaluation import latency


class _Student(BaseHTTPRequestHandler):
    seen: ClassVar[list[int]] = []  # shared on purpose: the server makes a handler per request

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Student.seen.append(len(body["texts"]))
        answer = json.dumps({"labels": ["billing"] * len(body["texts"])}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Student)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/predict"
    server.shutdown()
    server.server_close()


def test_an_endpoint_is_timed_one_request_at_a_time_and_in_batches(endpoint):
    _Student.seen.clear()
    figures = latency.measure_endpoint(endpoint, [f"ticket {i}" for i in range(130)])
    assert figures["source"] == "measured" and endpoint in figures["how"]
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] and figures["batch_throughput"] > 0
    assert 64 in _Student.seen and _Student.seen.count(1) >= latency.SINGLES  # batches, then single requests
    assert latency.describe(figures).startswith("measured by Stillroom: HTTP endpoint")


def test_an_endpoint_that_is_down_or_not_http_is_refused_in_a_sentence():
    with pytest.raises(InvalidInput, match="is not an http"):
        latency.measure_endpoint("file:///etc/passwd", ["x"])
    with pytest.raises(InvalidInput, match="could not be timed"):
        latency.measure_endpoint("http://127.0.0.1:9/none", ["x"], timeout_s=0.5)


def test_declared_latency_needs_who_how_and_where():
    figures = latency.declared({"p95_ms": 12, "declared_by": "Mia Vendor", "method": "k6 single requests",
                                "where": "staging"}, recorded_by="dana")
    assert latency.describe(figures).startswith("declared by Mia Vendor (k6 single requests; staging)")
    with pytest.raises(InvalidInput, match="Declared by"):
        latency.declared({"p95_ms": 12, "method": "k6 single requests", "where": "staging"}, recorded_by="dana")
