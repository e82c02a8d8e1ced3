"""A login that survives a refresh (issue 19): the cookie's token logs its person in while the login is open,
and nothing else does: not a copied expired or revoked token, not a forged or unsigned value, not a code
claimed twice, not a login from before a password reset or a deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.access import logins, people
from core.domain.errors import AuthenticationFailed
from core.domain.hashing import token_hash
from core.store.models import LoginSession, utcnow


def _cookie(session, user, now=None) -> tuple[int, str]:
    opened = logins.open_login(session, user=user, now=now)
    return opened.login_id, logins.claim_cookie(session, code=opened.code, now=now).value


def test_the_claimed_cookie_logs_its_person_in_and_only_hashes_are_stored(session, demo):
    login_id, cookie = _cookie(session, demo["val"])
    back = logins.resume(session, cookie=cookie)
    assert back.user is not None and back.user.id == demo["val"].id and back.login_id == login_id
    row = session.get(LoginSession, login_id)
    token = cookie.rpartition(".")[0]
    assert row.token_hash == token_hash(token) and token not in repr(row) and row.code_hash is None


def test_a_code_claims_its_cookie_once_and_not_after_its_minute(session, demo):
    opened = logins.open_login(session, user=demo["val"])
    logins.claim_cookie(session, code=opened.code)
    with pytest.raises(AuthenticationFailed, match="unknown, used or expired"):
        logins.claim_cookie(session, code=opened.code)
    late = logins.open_login(session, user=demo["val"])
    with pytest.raises(AuthenticationFailed):
        logins.claim_cookie(session, code=late.code, now=utcnow() + timedelta(seconds=logins.CODE_TTL_S + 1))


@pytest.mark.parametrize("forge", [
    lambda c: c.rpartition(".")[0],  # the token without its signature
    lambda c: c.rpartition(".")[0] + "." + "0" * 64,  # a made-up signature
    lambda c: "x" + c,  # another token under the old signature
    lambda c: "",
    lambda c: None,
    lambda c: [c],  # not text at all
])
def test_an_unsigned_or_forged_cookie_logs_nobody_in(session, demo, forge):
    _, cookie = _cookie(session, demo["val"])
    assert logins.resume(session, cookie=forge(cookie)).user is None


def test_a_correctly_signed_token_of_no_login_logs_nobody_in(session, demo):
    assert logins.resume(session, cookie=logins.sign("a-token-nobody-was-given")).user is None


def test_a_copied_cookie_stops_working_when_it_expires(session, demo):
    _, cookie = _cookie(session, demo["val"])
    later = utcnow() + timedelta(hours=12, seconds=1)  # the default lifetime is 12 hours
    back = logins.resume(session, cookie=cookie, now=later)
    assert back.user is None and "expired after 12 hours" in back.reason


def test_logging_out_ends_the_login_in_every_tab(session, demo):
    login_id, cookie = _cookie(session, demo["val"])
    logins.end_login(session, login_id=login_id)
    assert logins.resume(session, cookie=cookie).user is None
    assert not logins.check_login(session, login_id=login_id).ok


@pytest.mark.parametrize("by_admin", [True, False])
def test_a_password_reset_ends_every_login_of_the_account(session, demo, by_admin):
    cookies = [_cookie(session, demo["dana"]) for _ in range(3)]
    other_id, other = _cookie(session, demo["val"])
    actor = demo["admin"] if by_admin else demo["dana"]
    people.set_password(session, actor=actor, username="dana", password="a-brand-new-pass")
    assert all(logins.resume(session, cookie=c).user is None for _, c in cookies)
    assert all(not logins.check_login(session, login_id=i).ok for i, _ in cookies)
    assert logins.resume(session, cookie=other).user.id == demo["val"].id  # another person's login holds


def test_changing_ones_own_password_keeps_the_login_it_was_changed_in(session, demo):
    (here, kept), (_, other) = _cookie(session, demo["dana"]), _cookie(session, demo["dana"])
    people.set_password(session, actor=demo["dana"], username="dana", password="a-brand-new-pass", keep_login=here)
    assert logins.resume(session, cookie=kept).user.id == demo["dana"].id
    assert logins.resume(session, cookie=other).user is None


def test_an_admin_cannot_keep_a_login_through_someone_elses_reset(session, demo):
    login_id, cookie = _cookie(session, demo["dana"])
    people.set_password(session, actor=demo["admin"], username="dana", password="a-brand-new-pass",
                        keep_login=login_id)
    assert logins.resume(session, cookie=cookie).user is None


def test_deactivating_an_account_ends_its_logins(session, demo):
    _, cookie = _cookie(session, demo["dana"])
    people.set_active(session, actor=demo["admin"], username="dana", active=False)
    assert logins.resume(session, cookie=cookie).user is None


def test_a_login_from_before_an_epoch_change_made_outside_set_password_logs_nobody_in(session, demo):
    login_id, cookie = _cookie(session, demo["dana"])
    row = session.exec(select(LoginSession).where(LoginSession.id == login_id)).one()
    row.epoch = 99  # as if opened under another epoch than the account's
    session.add(row)
    session.commit()
    assert logins.resume(session, cookie=cookie).user is None


def test_the_signing_key_comes_from_the_setting_when_given(session, demo, monkeypatch):
    from core.store.config import get_settings
    _, cookie = _cookie(session, demo["val"])
    monkeypatch.setenv("STILLROOM_SESSION_SECRET", "another-long-secret-for-signing")
    get_settings.cache_clear()
    try:
        assert logins.resume(session, cookie=cookie).user is None  # signed with the file's key, not this one
        assert logins.unsign(logins.sign("t")) == "t"
    finally:
        get_settings.cache_clear()


def test_a_login_left_idle_ends_for_good_and_one_in_use_does_not(session, demo):
    login_id, cookie = _cookie(session, demo["val"])
    soon = utcnow() + timedelta(minutes=50)
    assert logins.check_login(session, login_id=login_id, now=soon).ok  # marks it seen
    assert logins.resume(session, cookie=cookie, now=soon + timedelta(minutes=50)).user is not None
    back = logins.resume(session, cookie=cookie, now=soon + timedelta(minutes=200))
    assert back.user is None and "60 minutes without activity" in back.reason
    assert session.get(LoginSession, login_id).revoked_at is not None
    assert logins.resume(session, cookie=cookie, now=soon + timedelta(minutes=51)).user is None
