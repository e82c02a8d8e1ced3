"""Attacks on logins and sessions (issue 11): guessing passwords in the browser and in core, an open session after
an admin's password reset, an unattended session, and reading who is an admin."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from pages_helpers import app_as, by_label, texts
from sqlmodel import select

from core.access import people
from core.cli import cli
from core.domain.errors import AuthenticationFailed
from core.store.models import AuditEvent, LoginAttempt


def _events(session, *actions: str) -> list[AuditEvent]:
    session.expire_all()
    return [e for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all() if e.action in actions]


def _try(session, username: str, password: str, client: str = "10.0.0.9") -> str:
    try:
        people.authenticate(session, username=username, password=password, client=client)
    except AuthenticationFailed as exc:
        return str(exc)
    return "ok"


def test_wrong_passwords_lock_the_account_even_for_the_right_one_and_are_audited(session, demo):
    answers = [_try(session, "sam", f"guess-{i}", client=f"10.0.0.{i}") for i in range(5)]  # five clients
    right = _try(session, "sam", "sponsor-demo-pass", client="10.0.1.1")
    assert answers == ["Wrong username or password."] * 5
    assert right.startswith("Too many failed logins") and "try again in" in right
    fails, refusals = _events(session, "login.fail"), _events(session, "login.refused")
    assert len(fails) == 5 and len(refusals) == 1
    assert all('"username":"sam"' in e.payload and e.actor == "(not logged in)" for e in fails + refusals)
    assert _try(session, "dana", "driver-demo-pass", client="10.0.1.1") == "ok"  # another account is not locked


def test_one_client_guessing_many_accounts_is_locked_out_for_every_account(session, demo):
    for name in ("sam", "dana", "val", "oscar", "admin"):
        assert _try(session, name, "password1", client="203.0.113.7") == "Wrong username or password."
    assert _try(session, "val", "validator-demo-pass", client="203.0.113.7").startswith("Too many failed logins")
    assert _try(session, "val", "validator-demo-pass", client="198.51.100.2") == "ok"


def test_the_wait_doubles_with_each_failure_after_the_limit(session, demo, monkeypatch):
    from datetime import timedelta

    from core.store.models import utcnow

    for i in range(5):
        session.add(LoginAttempt(username="sam", client=f"c{i}", succeeded=False, at=utcnow() - timedelta(seconds=40)))
    session.commit()
    assert people.locked_until(session, username="sam", client="x") is None  # 30 s after the 5th failure
    session.add(LoginAttempt(username="sam", client="c9", succeeded=False, at=utcnow() - timedelta(seconds=40)))
    session.commit()
    until = people.locked_until(session, username="sam", client="x")  # 6th failure: 60 s
    assert until is not None and timedelta(seconds=15) < until - utcnow() <= timedelta(seconds=20)


def test_fifteen_wrong_browser_logins_then_the_right_one_is_refused(demo, session):
    at = app_as(None)
    for _ in range(15):
        by_label(at.text_input, "Username").input("sam")
        by_label(at.text_input, "Password").input("not-the-password")
        by_label(at.button, "Log in").click().run()
    by_label(at.text_input, "Password").input("sponsor-demo-pass")
    by_label(at.button, "Log in").click().run()
    assert texts(at.error)[0].startswith("Too many failed logins") and "user_id" not in at.session_state
    assert len(_events(session, "login.fail")) == 5 and len(_events(session, "login.refused")) == 11


def test_an_admin_password_reset_ends_the_open_session(demo, session):
    at = app_as(demo["dana"], page="pages/import_data.py")
    assert at.session_state["user_id"] == demo["dana"].id
    people.set_password(session, actor=demo["admin"], username="dana", password="a-brand-new-pass")
    at.run()
    assert "user_id" not in at.session_state
    assert "ends every open session" in texts(at.warning)[0]
    assert '"sessions_ended":true' in _events(session, "user.password")[-1].payload


def test_an_idle_session_is_logged_out(demo, monkeypatch):
    at = app_as(demo["sam"])
    at.session_state["last_seen"] = time.time() - 61 * 60  # the default idle limit is 60 minutes
    at.run()
    assert "user_id" not in at.session_state and "60 minutes without activity" in texts(at.warning)[0]


@pytest.mark.parametrize(("who", "sees_admins"), [("dana", False), ("admin", True)])
def test_users_list_shows_admin_flags_to_admins_only(engine, demo, who, sees_admins):
    out = CliRunner().invoke(cli, ["--as", who, "users", "list"]).output
    assert ("ADMIN" in out.splitlines()[0]) is sees_admins
