"""The operator's whole job in the app (issue 19): on the Rollout page, start in shadow, create a serving token
(shown once), then serve with the command the page prints and call it with the page's `curl` line."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time

import httpx
import pytest
from browser_helpers import (
    ROOT,
    chromium_page,
    demo_server,
    gated_moderation_seed,
    go_to,
    log_in,
    pick_project,
    wait_idle,
)

pytestmark = pytest.mark.browser

# In the server's environment: the moderation project with a trained n-gram student and a local teacher that
# answers live, shipped by its sponsor (no rollout yet).
SEED = gated_moderation_seed(
    "import tempfile; from pathlib import Path; from serve_helpers import shipped",
    "shipped(s, get_engine(), demo, p, Path(tempfile.mkdtemp(dir=Path(get_engine().url.database).parent)))")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-serve"), seed=SEED, seed_timeout=900)  # it trains a student
    yield srv
    srv.stop()


def _codes(page) -> list[str]:
    return [c.inner_text().strip() for c in page.locator('[data-testid="stCode"]').all()]


def test_the_operator_serves_from_the_rollout_pages_instructions(server):
    from playwright.sync_api import expect

    with chromium_page(height=3600) as page:
        log_in(page, server.url, "oscar", "operator-demo-pass")
        pick_project(page, "Comment moderation")
        go_to(page, "Rollout and monitoring")
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout start: now at stage shadow.")).to_be_visible()
        page.get_by_label("New token for (the client that will use it)").fill("checkout-service")
        page.get_by_role("button", name="Create serving token").click()
        wait_idle(page)
        expect(page.get_by_text("The new token is shown only now")).to_be_visible()
        codes = _codes(page)
    command = next(c for c in codes if c.startswith("stillroom serve"))
    curl = next(c for c in codes if c.startswith("curl"))
    secret = next(c for c in codes if c.startswith("sts_"))  # a serving token, shown once

    port = _port()
    args = shlex.split(command)[2:]  # after "stillroom serve"
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "--as", "oscar", "serve", *args],
                            cwd=ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("stillroom serve did not start: " + (proc.stdout.read() if proc.poll() is not None else ""))
        shell = curl.replace("\\\n", " ").replace(":8700/", f":{port}/")
        done = subprocess.run(["bash", "-c", shell], env={**os.environ, "STILLROOM_SERVE_TOKEN": secret},
                              capture_output=True, text=True, timeout=30)
        answer = json.loads(done.stdout)
        unauthorised = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"text": "hello"})
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert answer["stage"] == "shadow" and answer["served_by"] == "teacher" and answer["label"], answer
    assert unauthorised.status_code == 401
