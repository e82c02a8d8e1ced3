"""Alembic migrations for Stillroom's schema (run by ``core.store.db.init_db``)."""
