"""People: hashed passwords, login, and the admin-only rule."""

import pytest
from sqlmodel import func, select

from core.access import people
from core.domain.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from core.store.models import AuditEvent, User


def _counts(session):
    return (session.exec(select(func.count()).select_from(User)).one(),
            session.exec(select(func.count()).select_from(AuditEvent)).one())


def test_password_is_stored_as_argon2_hash_never_in_clear(session, demo):
    sam = demo["sam"]
    assert sam.password_hash.startswith("$argon2id$")
    assert "sponsor-demo-pass" not in sam.password_hash
    payloads = " ".join(session.exec(select(AuditEvent.payload)).all())
    assert "demo-pass" not in payloads and "$argon2" not in payloads


def test_authenticate_accepts_right_password_and_refuses_wrong_one(session, demo):
    assert people.authenticate(session, username="sam", password="sponsor-demo-pass").username == "sam"
    with pytest.raises(AuthenticationFailed, match="Wrong username or password"):
        people.authenticate(session, username="sam", password="nope-nope")


def test_unknown_user_gets_the_same_sentence_as_a_wrong_password(session, demo):
    with pytest.raises(AuthenticationFailed) as unknown:
        people.authenticate(session, username="nobody", password="whatever1")
    with pytest.raises(AuthenticationFailed) as wrong:
        people.authenticate(session, username="sam", password="whatever1")
    assert str(unknown.value) == str(wrong.value)


def test_deactivated_account_cannot_log_in(session, demo):
    people.set_active(session, actor=demo["admin"], username="dana", active=False)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        people.authenticate(session, username="dana", password="driver-demo-pass")


def test_only_an_admin_creates_people(session, demo):
    before = _counts(session)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        people.create_user(session, actor=demo["sam"], username="eve", display_name="Eve",
                           password="long-enough")
    assert _counts(session) == before


def test_bootstrap_without_actor_only_on_an_empty_database(session, demo):
    with pytest.raises(PermissionDenied):
        people.create_user(session, actor=None, username="eve", display_name="Eve", password="long-enough")


def test_first_account_of_empty_database_becomes_admin(session):
    first = people.create_user(session, actor=None, username="root", display_name="Root",
                               password="long-enough")
    assert first.is_admin


@pytest.mark.parametrize("field,kwargs", [
    ("username", {"username": "Bad Name!"}),
    ("username", {"username": ""}),
    ("username", {"username": "sam"}),
    ("display_name", {"display_name": "   "}),
    ("password", {"password": "short"}),
])
def test_invalid_person_is_refused_naming_the_field_and_nothing_is_written(session, demo, field, kwargs):
    args = {"username": "eve", "display_name": "Eve", "password": "long-enough"} | kwargs
    before = _counts(session)
    with pytest.raises(InvalidInput) as err:
        people.create_user(session, actor=demo["admin"], **args)
    assert err.value.field == field
    assert _counts(session) == before


def test_person_may_change_own_password_but_not_someone_elses(session, demo):
    people.set_password(session, actor=demo["sam"], username="sam", password="a-new-password")
    assert people.authenticate(session, username="sam", password="a-new-password")
    with pytest.raises(PermissionDenied):
        people.set_password(session, actor=demo["sam"], username="dana", password="hijacked-pass")
