"""Attacks on the CLI's idea of who is acting (issue 11): ``--as`` is self-declared; a personal API token from
``stillroom login`` proves it, and with STILLROOM_CLI_REQUIRE_TOKEN nothing else is accepted."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.cli import cli
from core.store.config import get_settings
from core.store.models import AccessToken, AuditEvent


@pytest.fixture
def token_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "stillroom" / "token"
    monkeypatch.setenv("STILLROOM_TOKEN_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def run(*args: str, input: str | None = None):
    get_settings.cache_clear()  # settings read from the environment as this command would
    return CliRunner().invoke(cli, list(args), input=input)


def _login(username: str, password: str):
    return run("login", "--username", username, "--password-stdin", input=password + "\n")


def test_login_stores_a_token_only_its_owner_can_read_and_commands_act_as_its_owner(engine, demo, token_file):
    done = _login("dana", "driver-demo-pass")
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    secret = token_file.read_text().strip()
    who = run("whoami")
    assert who.output.startswith("dana (Dana Driver), by the personal API token in")
    impersonate = run("--as", "admin", "users", "list")
    assert impersonate.exit_code == 2 and "belongs to 'dana', not 'admin'" in impersonate.stderr
    from sqlmodel import Session
    with Session(engine) as s:
        [row] = s.exec(select(AccessToken)).all()
        assert row.kind == "cli" and row.token_hash != secret and secret not in str(row.model_dump())
        assert [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.entity == "access_token"))] == [
            "token.create"]


def test_a_wrong_password_gets_no_token(engine, demo, token_file):
    done = _login("dana", "not-her-password")
    assert done.exit_code == 2 and "Wrong username or password" in done.stderr and not token_file.exists()


def test_with_require_token_a_self_declared_name_is_refused(engine, demo, token_file, monkeypatch):
    monkeypatch.setenv("STILLROOM_CLI_REQUIRE_TOKEN", "1")
    refused = run("--as", "admin", "users", "list")
    assert refused.exit_code == 2 and "requires a personal API token" in refused.stderr
    assert _login("admin", "admin-demo-pass").exit_code == 0
    assert run("users", "list").exit_code == 0
    secret = token_file.read_text().strip()
    token_file.unlink()
    monkeypatch.setenv("STILLROOM_TOKEN", secret)  # the same token from the environment (CI, a pipeline)
    assert run("whoami").output.startswith("admin (Ada Admin), by the personal API token in STILLROOM_TOKEN")


def test_logout_revokes_the_token_everywhere(engine, demo, token_file, monkeypatch):
    assert _login("dana", "driver-demo-pass").exit_code == 0
    secret = token_file.read_text().strip()
    assert run("logout").exit_code == 0 and not token_file.exists()
    monkeypatch.setenv("STILLROOM_TOKEN", secret)  # a copy kept elsewhere is dead too
    stale = run("whoami")
    assert stale.exit_code == 2 and "unknown or revoked" in stale.stderr


def test_a_token_file_others_can_read_is_not_trusted(engine, demo, token_file):
    assert _login("dana", "driver-demo-pass").exit_code == 0
    token_file.chmod(0o644)
    done = run("whoami")
    assert done.exit_code == 2 and "can be read by other users" in done.stderr and "chmod 600" in done.stderr
