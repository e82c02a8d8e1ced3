"""The operator's journey in a real Chromium: a shipped project, start the rollout in shadow, watch the logged
traffic and its drift, advance to the first percentage stage, then roll back with a reason."""

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

# In the server's environment: the moderation project shipped on an approved, passing evaluation.
SEED = gated_moderation_seed(
    'from monitor_helpers import ship',
    'ship(s, demo, p)',
)
# Traffic logged in shadow: 300 requests, the teacher asked on each, one in ten answered differently.
TRAFFIC = """
from core.access import projects
from core.store.db import get_engine
from sqlmodel import Session
from monitor_helpers import traffic, write_log
with Session(get_engine()) as s:
    p = projects.get_project(s, "Comment moderation")
write_log(p.id, traffic(300, stage="shadow", disagree_every=40))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-operator"), seed=SEED)
    yield srv
    srv.stop()


def test_the_operator_starts_in_shadow_advances_on_traffic_and_rolls_back(server):
    from playwright.sync_api import expect

    with chromium_page(height=3200) as page:
        log_in(page, server.url, "oscar", "operator-demo-pass")
        pick_project(page, "Comment moderation")
        go_to(page, "Rollout and monitoring")
        expect(page.get_by_text("No request logged yet")).to_be_visible()
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout start: now at stage shadow.")).to_be_visible()

        run_python(server.env, TRAFFIC)
        go_to(page, "Portfolio")  # and back: the page reads the log afresh
        go_to(page, "Rollout and monitoring")
        expect(page.get_by_text("Sampled agreement", exact=True)).to_be_visible()
        expect(page.get_by_text("Drift against the training data")).to_be_visible()
        page.get_by_text("Advance one stage").click()
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout advance: now at stage 5.")).to_be_visible()

        page.get_by_text("Roll back", exact=True).click()
        page.get_by_label("Reason (required to roll back)").fill("Agreement dipped on threats overnight.")
        page.get_by_role("button", name="Apply").click()
        wait_idle(page)
        expect(page.get_by_text("Rollout rollback: now at stage off.")).to_be_visible()
