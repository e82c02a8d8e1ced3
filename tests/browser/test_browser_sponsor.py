"""The sponsor's journey in a real Chromium: log in, qualify the trigger, lock the gate, see it audited."""

from __future__ import annotations

import re

import pytest
from browser_helpers import chromium_page, demo_server, go_to, log_in, pick_project, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-sponsor"))
    yield srv
    srv.stop()


@pytest.fixture
def page(server):
    with chromium_page(height=2200) as pg:
        yield pg


def test_sponsor_qualifies_locks_the_gate_and_sees_it_audited(server, page, tmp_path):
    from playwright.sync_api import expect

    log_in(page, server.url, "sam", "sponsor-demo-pass")
    expect(page.get_by_text("Sam Sponsor")).to_be_visible()
    pick_project(page, "Comment moderation")

    go_to(page, "Qualify the trigger")
    page.get_by_label("Evidence").fill("Moderation calls cost $9k a month at 3M comments; finance flagged it.")
    page.get_by_label("Evidence").blur()
    wait_idle(page)
    terms = page.locator('[data-testid="stRadio"]').filter(has_text="Do its terms permit training")
    terms.get_by_text("yes", exact=True).click()
    wait_idle(page)
    expect(page.locator('[data-testid="stAlertContentSuccess"]').first).to_contain_text("proceed")
    page.get_by_role("button", name="Record verdict").click()
    wait_idle(page)
    expect(page.get_by_text("Verdict recorded as version 1: proceed.")).to_be_visible()

    go_to(page, "Success gate")
    expect(page.get_by_text("No gate is locked yet")).to_be_visible()
    page.get_by_role("button", name="Lock gate v1").click()
    wait_idle(page)
    expect(page.get_by_text("Gate v1 locked;")).to_be_visible()
    expect(page.get_by_text("content hash verifies")).to_be_visible()
    page.screenshot(path=str(tmp_path / "gate-locked.png"))

    go_to(page, "Audit log")
    expect(page.get_by_text("Latest: gate.lock by sam")).to_be_visible()
    page.get_by_role("button", name="Verify the audit chain").click()
    wait_idle(page)
    expect(page.get_by_text("Audit chain intact")).to_be_visible()


def test_a_wrong_password_keeps_the_visitor_out(server, page):
    from playwright.sync_api import expect

    page.goto(server.url)
    wait_idle(page)
    page.get_by_role("textbox", name="Username").fill("sam")
    page.get_by_role("textbox", name="Password").fill("guess-guess")
    page.get_by_role("button", name="Log in").click()
    wait_idle(page)
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)


def test_the_admin_sees_every_page_and_their_own_first_without_view_more(server, page):
    from playwright.sync_api import expect

    log_in(page, server.url, "admin", "admin-demo-pass")
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="People & projects")).to_be_visible()
    expect(nav.get_by_role("link", name="Rollout and monitoring")).to_be_visible()  # the last role group too
    expect(nav.get_by_text(re.compile(r"View \d+ more"))).to_have_count(0)
