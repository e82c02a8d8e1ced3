"""The HTTP protocol of ``stillroom serve`` (httptools) keeps h11's limit on the request head: endless headers get
400 and a closed connection instead of memory; large bodies and ordinary keep-alive traffic pass."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from serve_helpers import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.serving.worker import MAX_HEAD_BYTES, CappedHttpTools


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


@pytest.fixture(scope="module")
def url():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/", _echo, methods=["POST"])]), port=port,
                                           http=CappedHttpTools, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _raw(url: str, data: bytes, *, chunk: int = 4096) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i:i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection while we were still sending
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except ConnectionResetError:
            pass
    return answer


def test_endless_headers_get_400_and_the_connection_closed(url):
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"a" * 1000) for i in range(4 * MAX_HEAD_BYTES // 1000))
    answer = _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\n" + junk + b"Content-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"request head is over" in answer


def test_one_endless_header_gets_400_too(url):
    answer = _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (4 * MAX_HEAD_BYTES) + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_a_large_body_and_keep_alive_requests_pass(url):
    with httpx.Client(base_url=url, timeout=10) as client:
        big = client.post("/", content=b"x" * (5 * MAX_HEAD_BYTES))
        small = [client.post("/", content=b"y" * 10) for _ in range(20)]
    assert big.json() == {"bytes": 5 * MAX_HEAD_BYTES}
    assert [r.json()["bytes"] for r in small] == [10] * 20


def test_a_body_larger_than_the_head_limit_in_the_same_packet_as_the_head_passes(url):
    body = b"z" * (3 * MAX_HEAD_BYTES)
    answer = _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body, chunk=len(body) + 1024)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"bytes":%d}' % len(body))
