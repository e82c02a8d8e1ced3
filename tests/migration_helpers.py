"""A database as an older Stillroom left it: the schema migrated only up to a given revision."""

from __future__ import annotations

from sqlalchemy.engine import Engine


def engine_at(url: str, revision: str) -> Engine:
    """An engine on ``url`` whose schema stops at ``revision`` (rows are then written as that version would)."""
    from alembic import command
    from alembic.config import Config

    from core.store.db import MIGRATIONS_DIR, make_engine

    eng = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return eng
