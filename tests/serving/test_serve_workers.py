"""``stillroom serve --workers 2`` as real processes: both workers answer, each from its own process, and a token
revoked while they run stops working in every one of them within the refresh period."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import Server

from core.access import tokens


def _parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])  # after the state: the parent's pid


def _sample(server: Server, headers: dict) -> tuple[int, int]:
    """(worker pid, status of a classify call) over one fresh connection: both go to the same worker."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pid = client.get("/health").json()["worker_pid"]
        r = client.post("/v1/classify", json={"text": "my invoice is wrong"}, headers=headers)
        return pid, r.status_code


def _until_both(server: Server, headers: dict, *, status: int, rounds: int = 400) -> list[tuple[int, int]]:
    """Samples until both workers have answered ``status`` (or ``rounds`` fresh connections have been tried)."""
    seen: list[tuple[int, int]] = []
    for _ in range(rounds):
        seen.append(_sample(server, headers))
        if len({pid for pid, code in seen if code == status}) >= 2:
            break
        time.sleep(0.02)
    return seen


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_two_workers_are_two_processes_of_the_command_and_both_answer(session, demo, in_rollout):
    server = Server(in_rollout.name, args=("--workers", "2")).wait(timeout=240)
    try:
        seen = _until_both(server, server.headers, status=200)
        pids = {pid for pid, code in seen if code == 200}
        parents = {_parent_of(pid) for pid in pids}
        health = httpx.get(f"{server.url}/health", timeout=10).json()
    finally:
        server.stop()
    assert len(pids) == 2 and all(code == 200 for _, code in seen), seen
    assert server.proc.pid not in pids and parents == {server.proc.pid}  # the command supervises, workers answer
    assert health["workers"] == 2


def test_a_revoked_token_stops_working_in_every_worker(session, demo, in_rollout):
    made = tokens.create_serve_token(session, actor=demo["oscar"], project=in_rollout, name="revoked-later")
    mine = {"Authorization": f"Bearer {made.secret}"}
    server = Server(in_rollout.name, args=("--workers", "2", "--refresh-seconds", "0.3")).wait(timeout=240)
    try:
        before = _until_both(server, mine, status=200)
        tokens.revoke_serve_token(session, actor=demo["oscar"], project=in_rollout, token_id=made.row.id)
        after = _until_both(server, mine, status=401)
        confirm = [_sample(server, mine) for _ in range(20)]  # once refused by both, refused for good
        still = _sample(server, server.headers)  # the server's own token is untouched
    finally:
        server.stop()
    assert len({pid for pid, code in before if code == 200}) == 2, before
    assert len({pid for pid, code in after if code == 401}) == 2, after
    assert all(code == 401 for _, code in confirm), confirm
    assert still[1] == 200
