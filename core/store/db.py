"""Engine, sessions, schema migrations and the append-only guards.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout;
``DATABASE_URL`` selects another database (PostgreSQL is supported).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

from core.domain.errors import StillroomError
from core.store.config import get_settings
from core.store.models import APPEND_ONLY_KEYS, APPEND_ONLY_TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str | None = None) -> Engine:
    settings = get_settings()
    url = url or settings.db_url
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": settings.busy_timeout_s}
        )
        busy_ms = int(settings.busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Without this, INSERT OR REPLACE deletes rows without firing the
            # BEFORE DELETE triggers that keep tables append-only.
            cur.execute("PRAGMA recursive_triggers=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (the configured database by default)."""
    return make_engine(url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that rolls back if the block raises."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
        except Exception:
            session.rollback()
            raise


def init_db(engine: Engine | None = None) -> Engine:
    """Bring the schema to the newest version and (re)install the guards."""
    engine = engine or get_engine()
    upgrade_schema(engine)
    install_guards(engine)
    return engine


# The newest migration's revision: when the database already carries it, start-up
# skips loading Alembic (about 0.1 s on every CLI call; tests/cli/test_cli_startup.py). tests/store/test_db.py checks it
# against Alembic's own head, so a new migration cannot forget to move it.
HEAD_REVISION = "0020"


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


class UnknownSchema(StillroomError):
    """The database carries a schema revision that no migration here made: a newer Stillroom wrote it."""


def upgrade_schema(engine: Engine) -> None:
    """Migrate to HEAD_REVISION. At HEAD (every start-up but the first after an upgrade) this is one query and
    Alembic is not even imported; a revision no migration here knows is refused with a sentence, unchanged."""
    stored = schema_revision(engine)
    if stored == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if stored is not None and stored not in {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}:
        url = engine.url.render_as_string(hide_password=True)
        raise UnknownSchema(f"the database at {url} is at schema revision {stored!r}, which this Stillroom does "
                            f"not know (its newest is {HEAD_REVISION!r}): a newer Stillroom made it. Upgrade "
                            "Stillroom, or set DATABASE_URL to another database; nothing was changed.")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def install_guards(engine: Engine) -> None:
    """Triggers that refuse UPDATE and DELETE on the append-only tables.

    Created with IF NOT EXISTS at every start-up, so a database made by an
    older version (or restored from a dump without triggers) is guarded too.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for table, keys in APPEND_ONLY_KEYS.items():
                for op in ("UPDATE", "DELETE"):
                    conn.execute(text(_sqlite_trigger(table, op)))
                conn.execute(text(_sqlite_no_replace(table, keys)))
        elif engine.dialect.name == "postgresql":
            conn.execute(text(_PG_FUNCTION))
            for table in APPEND_ONLY_TABLES:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION stillroom_append_only()"
                    )
                )
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION stillroom_append_only()"
                    )
                )


def _sqlite_trigger(table: str, op: str) -> str:
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
    )


def _sqlite_no_replace(table: str, keys: tuple[tuple[str, ...], ...]) -> str:
    clash = " OR ".join(
        "(" + " AND ".join(f"{c} = NEW.{c}" for c in key) + ")" for key in keys
    )
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: replacing a row refused'); END"
    )


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION stillroom_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql
"""
