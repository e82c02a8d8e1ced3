"""Attacks on ``stillroom serve`` as a real process on 127.0.0.1 (issue 11): oversized and endless bodies, slow
clients, missing and forged tokens, a client that hangs up; every refusal counted and logged apart from traffic."""

from __future__ import annotations

import json
import socket
import time

import httpx
from serve_helpers import Server

from core.serving.requestlog import log_dir

CAP = 4096  # --max-body-bytes for these tests: small, so no test sends much


def _serve(project: str, *args: str) -> Server:
    """A started server; a busy machine may need a while to load the models, and a failed start is stopped."""
    server = Server(project, args=args)
    try:
        return server.wait(timeout=180)
    except AssertionError:
        server.stop()
        raise


def _raw(server: Server, head: str, *, token: str | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{head}\r\n")
                 .encode())
    return sock


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server ends the connection (EOF or reset) instead of waiting for the rest of the body."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _stderr_after_stop(server: Server) -> str:
    server.proc.terminate()
    server.proc.wait(timeout=10)
    err = server.proc.stderr.read()
    server.stop()
    return err


def _lines(project_id: int, prefix: str) -> list[dict]:
    return [json.loads(line) for f in sorted(log_dir(project_id).glob(f"{prefix}-*.jsonl"))
            for line in f.read_text().splitlines()]


def _health(server: Server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=10).json()


def test_oversized_bodies_get_413_without_being_read(in_rollout):
    server = _serve(in_rollout.name, "--max-body-bytes", str(CAP))
    try:
        announced = _raw(server, "Content-Length: 1073741824\r\n", token=server.token)  # 1 GiB, none sent
        announced_status = _status(announced)
        announced.close()
        endless = _raw(server, "Transfer-Encoding: chunked\r\n", token=server.token)
        for _ in range(5):  # 5 KiB, past the 4 KiB cap; the body never ends (no terminating chunk)
            endless.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        chunked_status = _status(endless)  # answered while the body is still open: it was not read to the end
        closed = _closed_by_server(endless)
        endless.close()
        refused = _health(server)["refused"]
    finally:
        server.stop()
    assert (announced_status, chunked_status, closed) == (413, 413, True) and refused == {"413": 2}
    lines = _lines(in_rollout.id, "refused")
    assert "1,073,741,824 bytes" in lines[0]["error"] and "passed 4,096 bytes" in lines[1]["error"]
    assert _lines(in_rollout.id, "requests") == []  # never counted as traffic


def test_slow_clients_cannot_hold_the_slots(in_rollout):
    server = _serve(in_rollout.name, "--max-concurrency", "2", "--read-timeout", "1")
    slow = []
    try:
        for _ in range(6):  # three times the slots: headers and 9 bytes of a 100-byte body, then silence
            sock = _raw(server, "Content-Length: 100\r\n", token=server.token)
            sock.sendall(b'{"text": ')
            slow.append(sock)
        fast = httpx.post(f"{server.url}/v1/classify", json={"text": "my invoice is wrong"},
                          headers=server.headers, timeout=30)
        statuses = [_status(sock) for sock in slow]  # each is cut off at its deadline
        refused = _health(server)["refused"]
    finally:
        for sock in slow:
            sock.close()
        server.stop()
    assert fast.status_code == 200 and fast.json()["served_by"] == "student"
    assert statuses == [408] * 6 and refused == {"408": 6}
    assert [x["request_id"] for x in _lines(in_rollout.id, "requests")] == [fast.json()["request_id"]]


def test_requests_without_a_valid_token_get_401_and_are_logged(in_rollout):
    server = _serve(in_rollout.name)
    try:
        none = httpx.post(f"{server.url}/v1/classify", json={"text": "hi"}, timeout=10)
        forged = httpx.post(f"{server.url}/v1/classify", json={"text": "hi"}, timeout=10,
                            headers={"Authorization": "Bearer sts_forged-token"})
        good = httpx.post(f"{server.url}/v1/classify", json={"text": "hi"}, headers=server.headers, timeout=10)
        bad = httpx.post(f"{server.url}/v1/classify", content=b"{not json", headers=server.headers, timeout=10)
        refused = _health(server)["refused"]
    finally:
        server.stop()
    assert (none.status_code, forged.status_code, good.status_code, bad.status_code) == (401, 401, 200, 400)
    assert none.headers["www-authenticate"] == "Bearer" and "serve-token create" in none.json()["error"]
    assert "unknown or revoked" in forged.json()["error"]
    assert refused == {"400": 1, "401": 2}
    assert [x["status"] for x in _lines(in_rollout.id, "refused")] == [401, 401, 400]
    assert len(_lines(in_rollout.id, "requests")) == 1


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(in_rollout):
    server = _serve(in_rollout.name)
    try:
        sock = _raw(server, "Content-Length: 200\r\n", token=server.token)
        sock.sendall(b'{"text": "half a bo')
        sock.close()
        deadline = time.monotonic() + 30
        while _health(server)["refused"] != {"disconnected": 1} and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = _health(server)["refused"]
    finally:
        stderr = _stderr_after_stop(server)
    assert refused == {"disconnected": 1}
    assert "Traceback" not in stderr and "Exception" not in stderr


def test_serving_without_any_token_is_refused_unless_auth_is_turned_off_loudly(session, demo, in_rollout):
    import subprocess
    import sys

    from serve_helpers import REPO, serve_token
    from sqlmodel import select

    from core.access import tokens
    from core.store.models import AuditEvent

    serve_token(in_rollout.name)
    [row] = tokens.serve_tokens(session, project_id=in_rollout.id)
    tokens.revoke_serve_token(session, actor=demo["oscar"], project=in_rollout, token_id=row.id)
    done = subprocess.run([sys.executable, "-m", "core.cli", "--as", "oscar", "serve", in_rollout.name, "--port", "9"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    server = _serve(in_rollout.name, "--no-auth")
    try:
        open_reply = httpx.post(f"{server.url}/v1/classify", json={"text": "hi"}, timeout=10)
        health = _health(server)
    finally:
        stderr = _stderr_after_stop(server)
    assert done.returncode == 3 and "has no serving token" in done.stderr
    assert open_reply.status_code == 200 and health["auth"] is False and "WARNING: --no-auth" in stderr
    actions = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.entity == "access_token"))]
    assert actions == ["token.create", "token.revoke"]


def test_requests_over_the_concurrency_limit_are_counted_and_logged_as_503(tmp_path):
    from test_serve_app import SlowTeacher, call, service

    svc = service(tmp_path, stage="shadow", max_concurrency=1, teacher=SlowTeacher(delay_s=0.3))
    codes = sorted(r.status_code for r in call(svc, *[{"text": f"crash {i}"} for i in range(4)]))
    refused = [json.loads(line) for f in (tmp_path / "serving").glob("refused-*.jsonl")
               for line in f.read_text().splitlines()]
    assert codes == [200, 503, 503, 503] and svc.refused == {"503": 3}
    assert [r["status"] for r in refused] == [503] * 3 and "answering 1 requests already" in refused[0]["error"]
