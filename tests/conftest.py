"""Shared fixtures: a fresh real SQLite file (WAL) per test, with or without the demo."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlmodel import Session

from core.cli.jobs import register_handlers

# Fixtures of the review and decision tests (a gated moderation project and its evaluations), and the
# bring-your-own scenarios' (people, people_template, saved_student), shared by the evaluation and decision tests;
# the notification tests' local webhook receiver (notify_helpers).
pytest_plugins = ["review_helpers", "byo_helpers", "notify_helpers", "serve_helpers"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# A developer's own `stillroom login` token must not decide who the tests act as.
os.environ.setdefault("STILLROOM_TOKEN_FILE", os.devnull)
# Commands the tests run as subprocesses run in those processes: no warm daemon outlives a test run, and each
# daemon test (tests/cli/test_warm.py) turns it on in its own runtime directory and stops it.
os.environ["STILLROOM_DAEMON"] = "off"
# Tests run jobs with core.store.jobs.run directly: register every kind's handler once, as `stillroom jobs run` does.
register_handlers()


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """Point the whole process (settings, engine cache) at a fresh database file."""
    from core.store import config, db

    url = f"sqlite:///{tmp_path / 'stillroom.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path))
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    yield url
    db.get_engine.cache_clear()
    config.get_settings.cache_clear()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    """A database file seeded with the demo once; tests that use the demo copy it
    (argon2 hashing of five demo passwords per test would dominate the suite)."""
    from core.demo import seed as demo_mod
    from core.store.db import init_db, make_engine

    path = tmp_path_factory.mktemp("template") / "demo.db"
    eng = make_engine(f"sqlite:///{path}")
    init_db(eng)
    with Session(eng) as s:
        demo_mod.seed(s)
    with eng.begin() as conn:  # fold the WAL into the main file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


def checkpoints_of(db_file) -> str:
    """The audit checkpoint file beside a SQLite database file (core.store.audit.checkpoint_path)."""
    from pathlib import Path

    path = Path(db_file)
    return str(path.with_name(path.stem + ".audit-checkpoints.jsonl"))


@pytest.fixture
def engine(db_url, request):
    from core.store.db import get_engine, init_db

    if "demo" in request.fixturenames:
        template, target = request.getfixturevalue("demo_template"), db_url.split("///", 1)[1]
        shutil.copy(template, target)
        # The audit chain's checkpoint file travels with its database (issue 9).
        shutil.copy(checkpoints_of(template), checkpoints_of(target))
    eng = get_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def demo(session):
    """The demo people and projects (copied from the seeded template); {username: User}."""
    from core.access import people
    from core.demo import seed as demo_mod

    return {p.username: people.get_user(session, p.username) for p in demo_mod.DEMO_PEOPLE}


def good_qualification(**overrides) -> dict:
    """A qualification that Stillroom recommends proceeding with."""
    from core.qualify.qualification import BetterMove

    data = {
        "play": "cost-pressure",
        "evidence": "The teacher bill is the largest line of our inference budget.",
        "task_scope": "narrow",
        "monthly_volume": 1_000_000,
        "teacher_cost_per_1k": 4.0,
        "current_p95_ms": 800.0,
        "target_p95_ms": 50.0,
        "better_first_moves": {m.value: "ruled-out" for m in BetterMove},
        "teacher_third_party": False,
        "build_cost": 10_000.0,
        "student_cost_per_1k": 0.4,
    }
    data.update(overrides)
    return data


@pytest.fixture
def moderation(session, demo):
    """The demo's unqualified project (sam sponsors, dana drives, val validates)."""
    from core.access import projects
    from core.demo import seed as demo_mod

    return projects.get_project(session, demo_mod.MODERATION)


@pytest.fixture
def qualified(session, demo, moderation):
    """The moderation project, qualified with verdict proceed by its sponsor."""
    from core.qualify import qualification

    qualification.record(session, actor=demo["sam"], project=moderation,
                         inputs=good_qualification(), verdict="proceed")
    return moderation
