"""A real Stillroom server and a real Chromium for end-to-end journeys.

On a developer machine without Chromium the browser tests skip with a message;
in CI (``CI`` set) a missing browser is a failure, since `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("STILLROOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FINISHED = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def require_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium)."
    if os.environ.get("CI"):
        pytest.fail(message + " CI makes the browser journeys mandatory.")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=300)


class Server:
    """`streamlit run web.py` (the app and its login-cookie routes) on a free loopback port, on its own database
    and data directory."""

    def __init__(self, workdir: Path):
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'stillroom.db'}",
                    "STILLROOM_DATA_DIR": str(workdir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "streamlit.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
        self.proc = subprocess.Popen(
            [streamlit, "run", "web.py", "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"streamlit did not answer on {self.url} within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished the script run the last action started."""
    page.wait_for_timeout(150)
    page.locator(FINISHED).wait_for(timeout=timeout)


def log_in(page, url: str, username: str, password: str) -> None:
    """Log in as ``username`` in a browser that holds no login: the HttpOnly login cookie would otherwise keep the
    previous person logged in (each person of a journey is someone else at another browser)."""
    page.context.clear_cookies()
    page.goto(url)
    wait_idle(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=30_000)
    wait_idle(page)


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_idle(page)


def pick_project(page, name: str) -> None:
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').click()
    page.get_by_role("option", name=name).click()
    wait_idle(page)


def run_python(env: dict, code: str, *, timeout: float = 120) -> None:
    """Run ``code`` in the server's environment, with the test helpers importable (to seed its database)."""
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=timeout)


# The moderation project qualified, its gate naming the rare "threat" category locked; a seed adds its own lines.
GATED_MODERATION = """
from sqlmodel import Session
from conftest import good_qualification
from review_helpers import lock_moderation_gate, make_evaluation, moderation_predictions
from core.store.db import get_engine
from core.access import people, projects
from core.qualify import qualification
with Session(get_engine(), expire_on_commit=False) as s:
    demo = {u: people.get_user(s, u) for u in ("admin", "sam", "dana", "val", "oscar")}
    p = projects.get_project(s, "Comment moderation")
    qualification.record(s, actor=demo["sam"], project=p, inputs=good_qualification(), verdict="proceed")
    lock_moderation_gate(s, demo, p)
"""


def gated_moderation_seed(*lines: str) -> str:
    """Seed code for ``demo_server``: GATED_MODERATION, then ``lines`` run inside its session ``s`` (with ``demo``
    and the project ``p``)."""
    return GATED_MODERATION + "".join(f"    {line}\n" for line in lines)


# The gated moderation project and an evaluation where aggregate accuracy passes but the rare "threat" category
# fails its floor.
REVIEW_SEED = gated_moderation_seed("make_evaluation(s, project=p, actor=demo['dana'], df=moderation_predictions())")


def demo_server(workdir: Path, *, seed: str | None = None, seed_timeout: float = 120) -> Server:
    """A started server on a fresh database holding the demo's people and projects (and ``seed``'s data)."""
    require_chromium()
    srv = Server(workdir)
    cli(srv.env, "init")
    cli(srv.env, "demo", "--people-only")
    if seed:
        run_python(srv.env, seed, timeout=seed_timeout)
    return srv.start()


@contextmanager
def chromium_page(*, height: int = 2400) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": height})
        finally:
            browser.close()
