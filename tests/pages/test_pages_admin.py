"""The admin page (people, projects, roles) and the person's own account page."""

from __future__ import annotations

import pytest
from pages_helpers import app_as, by_label, frame_with
from sqlmodel import func, select

from core.access import people, projects
from core.domain.errors import AuthenticationFailed
from core.domain.roles import Role
from core.store.models import AuditEvent, RoleAssignment, User


def _count(session, model) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_the_admin_adds_a_person_who_can_then_log_in(demo, session):
    at = app_as(demo["admin"], page="pages/admin.py")
    by_label(at.text_input, "Username").input("rita")
    by_label(at.text_input, "Display name").input("Rita Reviewer")
    by_label(at.text_input, "Initial password").input("rita-pass-123")
    by_label(at.button, "Add person").click().run()
    assert at.success[0].value == "rita can now log in."
    assert people.authenticate(session, username="rita", password="rita-pass-123").display_name == "Rita Reviewer"
    assert "rita" in frame_with(at, "Username")["Username"].tolist()


@pytest.mark.parametrize(("username", "name", "password", "says"), [
    ("", "Nobody", "long-enough-1", "username"),
    ("Bad Name!", "Bad", "long-enough-1", "username"),
    ("short", "Short Pw", "abc", "8 characters"),
    ("sam", "Sam Again", "long-enough-1", "already exists"),
    ("blank", "   ", "long-enough-1", "display name is empty"),
])
def test_a_bad_new_person_is_refused_with_the_field_named_and_nothing_written(demo, session, username, name,
                                                                            password, says):
    before = (_count(session, User), _count(session, AuditEvent))
    at = app_as(demo["admin"], page="pages/admin.py")
    by_label(at.text_input, "Username").input(username)
    by_label(at.text_input, "Display name").input(name)
    by_label(at.text_input, "Initial password").input(password)
    by_label(at.button, "Add person").click().run()
    assert says in at.error[0].value
    assert (_count(session, User), _count(session, AuditEvent)) == before


def test_the_admin_creates_a_project_and_assigns_roles(demo, session):
    at = app_as(demo["admin"], page="pages/admin.py")
    by_label(at.text_input, "Name").input("Invoice field extraction")
    by_label(at.button, "Create project").click().run()
    p = projects.get_project(session, "Invoice field extraction")
    by_label(at.selectbox, "Project").select(p.id)
    role_who = [s for s in at.selectbox if s.key == "role_who"][0]
    role_who.select("dana")
    by_label(at.selectbox, "Role").select(Role.DRIVER)
    by_label(at.button, "Assign role").click().run()
    assert projects.roles_of(session, project_id=p.id, user_id=demo["dana"].id) == {Role.DRIVER}
    assert at.success[0].value == "dana is now driver of 'Invoice field extraction'."


def test_the_driver_cannot_also_be_made_validator(demo, session):
    routing = projects.get_project(session, "Support ticket routing")
    before = _count(session, RoleAssignment)
    at = app_as(demo["admin"], page="pages/admin.py")
    by_label(at.selectbox, "Project").select(routing.id)
    [s for s in at.selectbox if s.key == "role_who"][0].select("dana")
    by_label(at.selectbox, "Role").select(Role.VALIDATOR)
    by_label(at.button, "Assign role").click().run()
    assert "cannot also be its validator" in at.error[0].value
    assert _count(session, RoleAssignment) == before


def test_a_non_admin_gets_no_admin_forms(demo):
    at = app_as(demo["sam"])
    with pytest.raises(ValueError):
        at.switch_page("pages/admin.py")


def test_changing_my_password_needs_the_current_one(demo, session):
    at = app_as(demo["dana"], page="pages/account.py")
    by_label(at.text_input, "Current password").input("wrong-password")
    by_label(at.text_input, "New password").input("dana-new-pass-1")
    by_label(at.text_input, "New password again").input("dana-new-pass-1")
    by_label(at.button, "Change password").click().run()
    assert at.error[0].value == "Wrong username or password."
    by_label(at.text_input, "Current password").input("driver-demo-pass")
    by_label(at.text_input, "New password").input("dana-new-pass-1")  # the form clears on submit
    by_label(at.text_input, "New password again").input("dana-new-pass-1")
    by_label(at.button, "Change password").click().run()
    assert at.success[0].value == "Password changed."
    session.expire_all()
    assert people.authenticate(session, username="dana", password="dana-new-pass-1").id == demo["dana"].id
    with pytest.raises(AuthenticationFailed):
        people.authenticate(session, username="dana", password="driver-demo-pass")
