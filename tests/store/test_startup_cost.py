"""Issue 18 (CLI start-up): what a command that opens the database no longer pays for, and what it still checks.

- Table models leave pydantic's validator and serializer unbuilt until first used (about a tenth of defining the
  tables), and still validate and dump when asked.
- A database already at HEAD_REVISION skips Alembic (tests/cli/test_cli_startup.py pins that it is not even
  imported); a revision no migration here knows is refused with one sentence and the database is left as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from core.store import db, models

REPO = Path(__file__).resolve().parents[2]


def table_models() -> list[type[SQLModel]]:
    return [mapper.class_ for mapper in SQLModel._sa_registry.mappers]


def test_every_table_model_derives_from_the_base_that_defers_pydantics_build():
    """A table added later with `SQLModel` as its base would build its validator at import again."""
    found = table_models()
    assert len(found) >= 30
    assert [m.__name__ for m in found if not issubclass(m, models.TableModel)] == []
    assert models.TableModel.model_config.get("defer_build") is True


def test_importing_the_table_models_builds_no_validator():
    """In a fresh interpreter: after the import, no table model has a built validator (pydantic marks a model
    complete once it has built one)."""
    probe = ("import json; from sqlmodel import SQLModel; import core.store.models; "
             "print(json.dumps({m.class_.__name__: m.class_.__pydantic_complete__ "
             "for m in SQLModel._sa_registry.mappers}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    complete = json.loads(done.stdout)
    assert len(complete) >= 30 and "User" in complete
    assert [name for name, built in complete.items() if built] == []


def test_a_table_model_still_validates_and_dumps_when_asked():
    user = models.User.model_validate({"username": "ada", "display_name": "Ada", "password_hash": "h"})
    assert user.username == "ada" and user.is_active is True
    assert models.User.model_validate(user.model_dump()).model_dump() == user.model_dump()
    with pytest.raises(pydantic.ValidationError, match="username"):
        models.User.model_validate({"username": 7, "display_name": "Ada", "password_hash": "h"})


def _schema(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY name")).all()


def test_a_database_at_head_is_not_migrated_again(engine, monkeypatch):
    """The fast path: one query, and Alembic's upgrade is never called."""
    from alembic import command

    def refuse(*_args, **_kwargs):
        raise AssertionError("Alembic ran on a database already at HEAD")

    monkeypatch.setattr(command, "upgrade", refuse)
    assert db.schema_revision(engine) == db.HEAD_REVISION
    db.init_db(engine)


def test_a_database_at_an_unknown_revision_is_refused_with_a_sentence_and_left_unchanged(engine):
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        conn.execute(text("DROP TRIGGER audit_event_no_update"))  # would be put back by install_guards
    before = _schema(engine)
    with pytest.raises(db.UnknownSchema) as refused:
        db.init_db(engine)
    said = str(refused.value)
    assert "schema revision '0099'" in said and f"its newest is '{db.HEAD_REVISION}'" in said
    assert "Upgrade Stillroom, or set DATABASE_URL to another database" in said
    assert _schema(engine) == before
    assert db.schema_revision(engine) == "0099"


def test_an_older_database_is_still_brought_to_head(tmp_path):
    """The slow path still runs: a database without the version table (new) is migrated and guarded."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert db.schema_revision(engine) is None
        db.init_db(engine)
        assert db.schema_revision(engine) == db.HEAD_REVISION
        names = {row[1] for row in _schema(engine)}
        assert "audit_event_no_update" in names and "user" in names
    finally:
        engine.dispose()
