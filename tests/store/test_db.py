"""Database settings: a real SQLite file in WAL mode, chosen by DATABASE_URL."""

from pathlib import Path

from sqlalchemy import text

from core.store import config, db
from core.store.models import APPEND_ONLY_TABLES


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(engine):
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_database_url_selects_the_file(engine, db_url):
    assert str(engine.url) == db_url
    assert Path(db_url.split("///", 1)[1]).exists()


def test_default_database_lives_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / "artifacts"))
    config.get_settings.cache_clear()
    try:
        assert config.get_settings().db_url == f"sqlite:///{tmp_path / 'artifacts' / 'stillroom.db'}"
    finally:
        config.get_settings.cache_clear()


def test_schema_is_versioned_with_alembic(engine):
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == db.HEAD_REVISION


def test_init_is_idempotent(engine):
    db.init_db(engine)
    db.init_db(engine)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")).scalar()
    assert n == 3 * len(APPEND_ONLY_TABLES)  # update, delete and replace guards per table


def test_head_revision_constant_matches_alembic_head(engine):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == db.HEAD_REVISION
    assert db.schema_revision(engine) == db.HEAD_REVISION
