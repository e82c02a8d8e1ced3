"""Alembic migrations for Stillroom's schema (run by ``core.db.init_db``)."""
