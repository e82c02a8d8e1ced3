"""The app shell: login required, navigation grouped by the person's roles, the project picker."""

from __future__ import annotations

import pytest
from pages_helpers import app_as, by_label, texts


def test_a_visitor_sees_only_the_login_page(demo):
    at = app_as(None)
    assert texts(at.title) == [":material/science: Stillroom"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/portfolio.py")


def test_wrong_password_is_refused_with_one_sentence(demo):
    at = app_as(None)
    by_label(at.text_input, "Username").input("sam")
    by_label(at.text_input, "Password").input("not-the-password")
    by_label(at.button, "Log in").click().run()
    assert texts(at.error) == ["Wrong username or password."]
    assert "user_id" not in at.session_state


def test_the_right_password_logs_the_person_in(demo):
    at = app_as(None)
    by_label(at.text_input, "Username").input("sam")
    by_label(at.text_input, "Password").input("sponsor-demo-pass")
    by_label(at.button, "Log in").click().run()
    assert at.session_state["user_id"] == demo["sam"].id
    assert not at.error


def test_navigation_offers_the_sponsor_pages_only_to_sponsors_and_admins(demo):
    app_as(demo["sam"], page="pages/gate.py")
    app_as(demo["admin"], page="pages/admin.py")
    dana = app_as(demo["dana"])
    with pytest.raises(ValueError):
        dana.switch_page("pages/gate.py")
    with pytest.raises(ValueError):
        dana.switch_page("pages/admin.py")


def test_the_sidebar_names_the_person_and_picks_among_their_projects(demo):
    at = app_as(demo["sam"])
    assert "**Sam Sponsor** · `sam`" in texts(at.sidebar.markdown)
    picker = by_label(at.sidebar.selectbox, "Project")
    assert sorted(picker.options) == ["Comment moderation", "Support ticket routing"]
    assert at.session_state["project_id"] == picker.value


def test_a_deactivated_person_is_sent_back_to_login(demo, session):
    from core.access import people

    people.set_active(session, actor=demo["admin"], username="dana", active=False)
    at = app_as(demo["dana"])
    assert texts(at.title) == [":material/science: Stillroom"]
    assert "user_id" not in at.session_state


@pytest.mark.parametrize(("username", "lands_on"), [
    ("admin", "Support ticket routing"), ("dana", "Support ticket routing"), ("val", "Support ticket routing"),
    ("oscar", "Support ticket routing"),
    # Issue 19: sam's only waiting work is qualifying moderation's trigger, so he lands there, not on the
    # project furthest along.
    ("sam", "Comment moderation")])
def test_every_demo_login_lands_on_the_project_with_work_in_it(demo, session, username, lands_on):
    from core.access.projects import get_project

    at = app_as(demo[username])
    expected = get_project(session, lands_on)  # with nothing waiting: the furthest along, not the first by name
    assert by_label(at.sidebar.selectbox, "Project").value == at.session_state["project_id"] == expected.id


def test_the_shell_imports_neither_the_database_layer_nor_the_demo():
    """import-linter's contract covers the pages package; app.py and web.py are scripts, not packages, so they are
    read here."""
    import ast

    from pages_helpers import APP

    for script, expected in ((APP, "core.access.projects"), (APP.replace("app.py", "web.py"), "core.access")):
        tree = ast.parse(open(script).read())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert expected in modules
        assert not [m for m in modules if m.startswith(("core.store", "core.demo"))]


def test_the_driver_sees_both_data_pages(demo):
    at = app_as(demo["dana"], page="pages/import_data.py")
    assert texts(at.title) == [":material/upload_file: Import data"]
    at.switch_page("pages/coverage_holdout.py").run()
    assert not at.exception and texts(at.title) == [":material/donut_small: Coverage and holdout"]
