"""A file teacher's student in a real Chromium: the operator sees why Start is disabled, chooses a person's queue
as the fallback target, starts in shadow and, on the logged traffic, reaches the 5 % stage."""

from __future__ import annotations

import pytest
from browser_helpers import (
    chromium_page,
    demo_server,
    gated_moderation_seed,
    go_to,
    log_in,
    pick_project,
    run_python,
    wait_idle,
)

pytestmark = pytest.mark.browser

# In the server's environment: the moderation project shipped on a student trained from an imported teacher run.
SEED = gated_moderation_seed(
    'import tempfile; from pathlib import Path; from fallback_helpers import ship_file_student',
    'ship_file_student(s, get_engine(), demo, p, Path(tempfile.mkdtemp()))',
)
# Traffic logged in shadow as a queue-fallback service logs it: a person answered, no teacher was asked.
TRAFFIC = """
from core.access import projects
from core.store.db import get_engine
from sqlmodel import Session
from monitor_helpers import traffic, write_log
with Session(get_engine()) as s:
    p = projects.get_project(s, "Comment moderation")
write_log(p.id, [{**r, "served_by": "queue", "teacher_label": None, "teacher_asked": False}
                 for r in traffic(300, stage="shadow")])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-fallback"), seed=SEED)
    yield srv
    srv.stop()


def test_a_file_teacher_project_reaches_5_percent_with_a_chosen_fallback(server):
    from playwright.sync_api import expect

    with chromium_page(height=3200) as page:
        log_in(page, server.url, "oscar", "operator-demo-pass")
        pick_project(page, "Comment moderation")
        go_to(page, "Rollout and monitoring")
        expect(page.get_by_text("No fallback target chosen").first).to_be_visible()
        expect(page.get_by_text("Start is disabled until a fallback target is chosen")).to_be_visible()
        expect(page.get_by_role("button", name="Apply")).to_be_disabled()

        page.get_by_text("A person's queue", exact=True).click()
        page.get_by_role("button", name="Choose the fallback target").click()
        wait_idle(page)
        expect(page.get_by_text("Fallback target chosen: queue.")).to_be_visible()
        expect(page.get_by_text("The fallback is a person's queue").first).to_be_visible()
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout start: now at stage shadow.")).to_be_visible()

        run_python(server.env, TRAFFIC)
        go_to(page, "Portfolio")  # and back: the page reads the log afresh
        go_to(page, "Rollout and monitoring")
        page.get_by_text("Advance one stage").click()
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout advance: now at stage 5.")).to_be_visible()
