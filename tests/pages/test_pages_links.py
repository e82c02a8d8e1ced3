"""Issue 19 in the app shell (AppTest): a link's query parameters pick the project and the evaluation, a person
lands on their oldest waiting work, the login form opens a login whose cookie the page claims, and a login
ended in another tab ends this one. (Logging out, F5 and the cookie itself: tests/browser/test_browser_links.py.)"""

from __future__ import annotations

import time

from pages_helpers import APP, app_as, by_label, page_links
from streamlit.testing.v1 import AppTest

from conftest import good_qualification
from core.access import logins, projects
from core.demo import seed as demo_mod
from core.gate import gate
from core.qualify import qualification
from core.store.models import LoginSession


def _linked(user, *, page: str | None = None, **params) -> AppTest:
    """The app opened from a link carrying ``params``, as ``user`` (logged in as pages._ui.start_session does)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user_id"] = user.id
    at.session_state["session_epoch"] = user.session_epoch or 0
    at.session_state["last_seen"] = time.time()
    for name, value in params.items():
        at.query_params[name] = str(value)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_a_link_naming_a_project_opens_it_and_the_address_keeps_naming_it(demo, session):
    moderation = projects.get_project(session, demo_mod.MODERATION)
    at = _linked(demo["sam"], project=moderation.id)
    assert at.session_state["project_id"] == moderation.id
    assert by_label(at.sidebar.selectbox, "Project").value == moderation.id
    assert at.query_params["project"] == str(moderation.id)


def test_a_link_to_a_project_the_person_cannot_see_opens_their_own(demo, session):
    secret = projects.create_project(session, actor=demo["admin"], name="Secret")
    at = _linked(demo["val"], project=secret.id)
    assert at.session_state["project_id"] != secret.id
    assert at.session_state["project_id"] in {p.id for p in projects.projects_for(session, user=demo["val"])}


def test_a_link_naming_an_evaluation_opens_the_review_on_it(demo, session, gated, failing_eval, passing_eval):
    latest = _linked(demo["val"], page="pages/review.py", project=gated.id)
    assert by_label(latest.selectbox, "Evaluation").value == passing_eval.id  # no link: the latest
    linked = _linked(demo["val"], page="pages/review.py", project=gated.id, evaluation=failing_eval.id)
    assert by_label(linked.selectbox, "Evaluation").value == failing_eval.id
    made_up = _linked(demo["val"], page="pages/review.py", project=gated.id, evaluation="99999")
    assert by_label(made_up.selectbox, "Evaluation").value == passing_eval.id


def test_the_person_lands_on_the_project_with_their_oldest_waiting_item(demo, session, moderation):
    from data_helpers import import_rows, ticket_rows

    qualification.record(session, actor=demo["sam"], project=moderation, inputs=good_qualification(),
                         verdict="proceed")
    gate.lock(session, actor=demo["sam"], project=moderation, spec=gate.template("cost-pressure"))
    import_rows(session, demo["dana"], ticket_rows(100))  # the routing project moves on: it waits since now
    assert app_as(demo["dana"]).session_state["project_id"] == moderation.id


def test_every_waiting_line_links_to_its_page_on_its_project_and_evaluation(demo, gated, failing_eval):
    at = app_as(demo["val"], page="pages/portfolio.py")
    assert (f"**Review evaluation \\#{failing_eval.id}** · Comment moderation", "review",
            f"project={gated.id}&evaluation={failing_eval.id}") in page_links(at)


def _log_in_val() -> AppTest:
    """val logs in with the form; then the app as the next script run of that tab shows it (AppTest keeps
    running the login page's script after its rerun, so the session carries over to a fresh run of app.py)."""
    form = app_as(None)
    by_label(form.text_input, "Username").input("val")
    by_label(form.text_input, "Password").input("validator-demo-pass")
    by_label(form.button, "Log in").click().run()
    at = AppTest.from_file(APP, default_timeout=60)
    for key in ("user_id", "session_epoch", "last_seen", "login_id", "login_code"):
        at.session_state[key] = form.session_state[key]
    return at.run()


def test_the_login_form_opens_a_login_whose_cookie_the_next_run_claims(demo, session):
    at = _log_in_val()
    login_id = at.session_state["login_id"]
    row = session.get(LoginSession, login_id)
    assert row.user_id == demo["val"].id and row.code_hash and row.token_hash is None  # not claimed yet
    assert "login_code" not in at.session_state  # handed to the page's script once, then forgotten
    scripts = [e.proto.body for e in at.get("html")]
    assert any("/stillroom/login-cookie" in body for body in scripts)


def test_a_login_ended_elsewhere_ends_this_tab_too(demo, session):
    at = _log_in_val()
    logins.end_login(session, login_id=at.session_state["login_id"])  # logged out in another tab
    at.run()
    assert "user_id" not in at.session_state
