"""The validator's and the sponsor's journeys in a real Chromium: review the disagreements, record a verdict,
reject the evaluation; then see ship refused and open the next round with a data request."""

from __future__ import annotations

import pytest
from browser_helpers import chromium_page, demo_server, gated_moderation_seed, go_to, log_in, pick_project, wait_idle

pytestmark = pytest.mark.browser

# Run in the server's environment: the moderation project qualified, its gate naming the rare "threat"
# category locked, and an evaluation where aggregate accuracy passes but that category fails its floor.
SEED = gated_moderation_seed("make_evaluation(s, project=p, actor=demo['dana'], df=moderation_predictions())")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-review"), seed=SEED)
    yield srv
    srv.stop()


@pytest.fixture
def page(server):
    with chromium_page(height=3000) as pg:
        yield pg


def test_the_validator_reviews_a_disagreement_and_rejects_the_evaluation(server, page):
    from playwright.sync_api import expect

    log_in(page, server.url, "val", "validator-demo-pass")
    pick_project(page, "Comment moderation")
    go_to(page, "Review and sign off")
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
    expect(page.get_by_text("examples where student and teacher differ")).to_be_visible()
    page.get_by_role("button", name="both-wrong").click()
    wait_idle(page)
    expect(page.get_by_text("recorded.").first).to_be_visible()
    signoff = page.locator('[data-testid="stRadio"]').filter(has_text="Your sign-off")
    signoff.get_by_text("reject", exact=True).click()
    page.get_by_label("Comment (required to reject)").fill("The threat category misses its floor.")
    page.get_by_role("button", name="Sign off evaluation #1").click()
    wait_idle(page)
    expect(page.get_by_text("Evaluation #1 rejected").first).to_be_visible()


def test_the_sponsor_sees_ship_refused_and_iterates_with_a_data_request(server, page):
    from playwright.sync_api import expect

    log_in(page, server.url, "sam", "sponsor-demo-pass")
    pick_project(page, "Comment moderation")
    go_to(page, "Decide")
    expect(page.get_by_text("the gate is not met")).to_be_visible()
    expect(page.get_by_text("Ship is refused").first).to_be_visible()
    decision = page.locator('[data-testid="stRadio"]').filter(has_text="Decision")
    expect(decision.locator("input:checked")).to_have_count(0)  # nothing chosen for the sponsor
    expect(decision.get_by_text("Ship: roll out behind the safety net")).to_have_count(0)  # not while blocked
    expect(page.get_by_text("Ship is not offered while the blockers above stand.")).to_be_visible()
    page.get_by_text("Iterate: a new round with more data").click()
    page.get_by_label("Rationale").fill("The threat category needs more examples before we ship.")
    page.get_by_role("button", name="Record the decision").click()
    wait_idle(page)
    expect(page.get_by_text("Round 1: iterate recorded.")).to_be_visible()
    go_to(page, "Decision record")
    expect(page.get_by_role("button", name="Download HTML (self-contained)")).to_be_visible()
    expect(page.get_by_text("iterate").first).to_be_visible()
