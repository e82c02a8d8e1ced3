"""Append-only tables refuse UPDATE and DELETE, even as raw SQL outside the app."""

import sqlite3

import pytest
from sqlalchemy import text

from core.store.db import init_db
from core.store.models import APPEND_ONLY_TABLES


def test_every_append_only_table_has_its_three_guards(engine):
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    for table in APPEND_ONLY_TABLES:
        assert {f"{table}_no_update", f"{table}_no_delete", f"{table}_no_replace"} <= names


def _raw(db_url):
    return sqlite3.connect(db_url.split("///", 1)[1])


@pytest.mark.parametrize("table", ["audit_event", "gate_version", "qualification"])
@pytest.mark.parametrize("statement", [
    "UPDATE {t} SET id = id",
    "DELETE FROM {t}",
])
def test_raw_sql_update_and_delete_are_refused(db_url, demo, table, statement):
    conn = _raw(db_url)
    try:
        (before,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert before > 0
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement.format(t=table))
        conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (before,)
    finally:
        conn.close()


def test_insert_or_replace_cannot_overwrite_an_audit_event(db_url, demo):
    # A plain sqlite3 connection, as someone at the sqlite3 shell would have:
    # recursive_triggers is off there, so only the INSERT guard stops this.
    conn = _raw(db_url)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(
                "INSERT OR REPLACE INTO audit_event (id, ts, actor, project_id, action, entity, "
                "entity_id, payload, prev_hash, hash) SELECT id, ts, 'mallory', project_id, action, "
                "entity, entity_id, payload, prev_hash, hash FROM audit_event WHERE id = 1")
        conn.rollback()
        assert conn.execute("SELECT actor FROM audit_event WHERE id = 1").fetchone() == ("admin",)
    finally:
        conn.close()


def test_dropped_triggers_are_reinstalled_at_start_up(engine, demo):
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER gate_version_no_delete"))
    init_db(engine)
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM gate_version"))
