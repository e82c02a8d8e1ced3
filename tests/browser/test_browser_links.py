"""Issue 19 in a real Chromium: a deep link opened logged out lands there after the login; F5 keeps the session
(an HttpOnly cookie JavaScript cannot read); logging out, then F5, shows the login page; a copied cookie of an
ended login, or a forged one, gets the login page too."""

from __future__ import annotations

import pytest
from browser_helpers import FINISHED, REVIEW_SEED, chromium_page, demo_server, wait_idle

from core.access import logins

pytestmark = pytest.mark.browser

# The review journey's seed (an evaluation of the moderation project waiting for val), and a second one.
SEED = REVIEW_SEED + "    make_evaluation(s, project=p, actor=demo['dana'], df=moderation_predictions())\n"
MODERATION, FIRST_EVAL = 2, 1  # ids in the seeded database (routing is project 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-links"), seed=SEED)
    yield srv
    srv.stop()


@pytest.fixture
def page(server):
    with chromium_page(height=1600) as pg:
        yield pg


def _settle(page) -> None:
    """Wait for the script run, and for the one a login cookie or a link's switch may start after it."""
    wait_idle(page)
    page.wait_for_timeout(600)
    page.locator(FINISHED).wait_for(timeout=30_000)


def _submit_login(page, username: str, password: str) -> None:
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=30_000)
    page.locator('body[data-login-cookie="set"]').wait_for(state="attached", timeout=15_000)
    _settle(page)


def _selected(page, label: str) -> str:
    """What the select box labelled ``label`` shows."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    return box.inner_text() + " ".join(i.input_value() for i in box.locator("input").all())


def test_a_deep_link_opened_logged_out_lands_there_after_login_and_f5_keeps_it(server, page):
    from playwright.sync_api import expect

    link = f"{server.url}/review?project={MODERATION}&evaluation={FIRST_EVAL}"
    page.goto(link)  # the server's first visitor: not a page of Streamlit's old pages/ folder
    _settle(page)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_text("Page not found")).to_have_count(0)
    _submit_login(page, "val", "validator-demo-pass")
    assert page.url == link
    expect(page.get_by_role("heading", name="Review and sign off")).to_be_visible()
    assert f"evaluation #{FIRST_EVAL} " in _selected(page, "Evaluation")  # the linked one, not the latest (#2)
    assert "Comment moderation" in _selected(page, "Project")

    cookie = next(c for c in page.context.cookies() if c["name"] == logins.COOKIE_NAME)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert page.evaluate("document.cookie").find(logins.COOKIE_NAME) == -1  # scripts cannot read it

    page.reload()
    _settle(page)
    expect(page.get_by_role("heading", name="Review and sign off")).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_have_count(0)
    assert f"evaluation #{FIRST_EVAL} " in _selected(page, "Evaluation")


def test_logging_out_then_f5_shows_the_login_page_and_the_old_cookie_is_worthless(server, page):
    from playwright.sync_api import expect

    page.goto(server.url)
    _settle(page)
    _submit_login(page, "val", "validator-demo-pass")
    stolen = next(c for c in page.context.cookies() if c["name"] == logins.COOKIE_NAME)
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    page.locator('body[data-login-cookie="dropped"]').wait_for(state="attached", timeout=15_000)
    _settle(page)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.reload()
    _settle(page)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert logins.COOKIE_NAME not in {c["name"] for c in page.context.cookies()}

    page.context.add_cookies([{**stolen}])  # a copy taken before the logout
    page.reload()
    _settle(page)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)


def test_a_forged_cookie_gets_the_login_page(server, page):
    from playwright.sync_api import expect

    page.goto(server.url)
    _settle(page)
    host = server.url.split("//", 1)[1].split(":", 1)[0]
    page.context.add_cookies([{"name": logins.COOKIE_NAME, "value": "made-up-token." + "0" * 64,
                               "domain": host, "path": "/"}])
    page.goto(f"{server.url}/review?project={MODERATION}")
    _settle(page)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
