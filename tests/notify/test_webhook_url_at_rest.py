"""A webhook URL is its own secret (Slack's path): the database never holds it. An insider with a copy of the
database file learns only its SHA-256 and its shown form; the sender finds the URL on the server's own list."""

from __future__ import annotations

import sqlite3

from notify_helpers import SECRET_PATH, wait_until
from sqlalchemy import text
from sqlmodel import select

from core.access import projects
from core.demo.seed import ROUTING
from core.domain.hashing import sha256_hex
from core.notify import delivery, inbox, webhooks
from core.notify.rules import Kind
from core.store import config
from core.store.models import WebhookDelivery


def _dump(db_url: str) -> str:
    """Every row of every table, as SQL text: what a copy of the database file gives away."""
    with sqlite3.connect(db_url.split("///", 1)[1]) as conn:
        return "\n".join(conn.iterdump())


def _signoff(session, demo, project) -> None:
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=project.id, actor=demo["val"], evaluation_id=None,
                 detail="approved")
    session.commit()


def test_no_table_holds_the_url_and_the_hook_still_fires(session, demo, receiver, db_url):
    project = projects.get_project(session, ROUTING)
    row = webhooks.add(session, actor=demo["admin"], url=receiver.url, kinds=[Kind.SIGNOFF.value])
    assert row.url_sha256 == sha256_hex(receiver.url)
    _signoff(session, demo, project)
    assert receiver.wait_for(1)[0]["path"] == SECRET_PATH
    with session.get_bind().begin() as conn:  # fold the WAL in, so the file is what a copy would hold
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    dumped = _dump(db_url)
    assert SECRET_PATH not in dumped and "s3cr3t" not in dumped
    assert sha256_hex(receiver.url) in dumped  # what it holds instead


def test_a_url_given_in_another_spelling_is_stored_and_called_as_listed(session, demo, receiver):
    """Host case and a trailing slash pass the list's rule; the subscription keeps the listed URL's hash, so the
    sender finds it."""
    project = projects.get_project(session, ROUTING)
    spelled = receiver.url.replace("http://127.0.0.1", "HTTP://127.0.0.1") + "/"
    row = webhooks.add(session, actor=demo["admin"], url=spelled, kinds=[Kind.SIGNOFF.value])
    assert row.url_sha256 == sha256_hex(receiver.url) and webhooks.listed(row.url_sha256) == receiver.url
    _signoff(session, demo, project)
    assert receiver.wait_for(1)[0]["path"] == SECRET_PATH


def test_a_url_taken_off_the_list_is_not_found_and_nothing_is_sent(session, demo, receiver, monkeypatch):
    project = projects.get_project(session, ROUTING)
    row = webhooks.add(session, actor=demo["admin"], url=receiver.url, kinds=[Kind.SIGNOFF.value])
    monkeypatch.setenv("STILLROOM_WEBHOOK_URLS", "https://hooks.example/other")
    config.get_settings.cache_clear()
    assert webhooks.listed(row.url_sha256) is None
    _signoff(session, demo, project)
    delivery.drain(session.get_bind(), timeout_s=10)

    def finished() -> list[WebhookDelivery]:
        session.expire_all()
        return [d for d in session.exec(select(WebhookDelivery)).all() if d.status == "failed"]

    assert wait_until(finished)
    sent = finished()
    assert receiver.posts == [] and len(sent) == 1
    assert "no longer on STILLROOM_WEBHOOK_URLS" in (sent[0].last_error or "")


def test_migration_0020_hashes_stored_urls_and_drops_them(tmp_path, receiver):
    """A database from before (URLs in clear) upgrades: each row keeps its URL's hash, the column is gone, and
    the subscription still reaches the URL on the list."""
    from migration_helpers import engine_at

    from core.store.db import init_db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = engine_at(url, "0019")
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO user (id, username, display_name, password_hash, is_admin, is_active, "
                          "created_at) VALUES (1, 'ada', 'Ada', '-', 1, 1, '2025-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO webhook_subscription (id, url, shown, kinds, created_by, created_at) "
                          "VALUES (1, :u, 'http://127.0.0.1/… #x', '[]', 1, '2025-01-01 00:00:00')"),
                     {"u": f" {receiver.url} "})
    init_db(eng)
    with eng.connect() as conn:
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(webhook_subscription)"))]
        stored = conn.execute(text("SELECT url_sha256 FROM webhook_subscription")).scalar_one()
    eng.dispose()
    assert "url" not in columns and stored == sha256_hex(receiver.url)
    assert webhooks.listed(stored) == receiver.url
    assert SECRET_PATH not in _dump(url)
