"""The bring-your-own scenarios' people, projects and CLI helpers, shared by the evaluation and decision tests."""


from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from conftest import checkpoints_of, good_qualification
from core.cli import cli

PEOPLE = {"spon": "sponsor", "drv": "driver", "val": "validator"}
QUEUES = ["billing", "shipping", "account", "security"]  # security is the rare, critical slice
WORDS = "please help order late card charged twice box damaged parcel address today again still waiting".split()
KEYS = {"billing": "invoice", "shipping": "courier", "account": "password", "security": "breach"}


def run(*args: str, who: str | None = "drv", input: str | None = None):
    prefix = ["--as", who] if who else []
    return CliRunner().invoke(cli, [*prefix, *args], input=input)


def ok(*args: str, who: str | None = "drv", input: str | None = None) -> str:
    result = run(*args, who=who, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def _yaml(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def people_template(tmp_path_factory):
    """A database made through the CLI with its first admin and three people, once per module: each test copies
    it (four argon2 hashes per test would dominate these tests) and makes its own project through the CLI."""
    from core.store import config, db

    folder = tmp_path_factory.mktemp("people")
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "STILLROOM_DATA_DIR")}
    os.environ.update(DATABASE_URL=f"sqlite:///{folder / 'stillroom.db'}", STILLROOM_DATA_DIR=str(folder))
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    try:
        ok("init", "--admin", "root", "--display-name", "Root", who=None, input="root-password-1\nroot-password-1\n")
        for user in PEOPLE:
            ok("users", "add", user, "--display-name", user.title(), "--password-stdin", who="root",
               input=f"{user}-password-1\n")
        with db.get_engine().begin() as conn:  # fold the WAL into the file before it is copied
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.get_engine().dispose()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        config.get_settings.cache_clear()
        db.get_engine.cache_clear()
    return folder / "stillroom.db"


@pytest.fixture
def people(db_url, people_template):
    target = db_url.split("///", 1)[1]
    shutil.copy(people_template, target)
    if Path(checkpoints_of(people_template)).exists():
        shutil.copy(checkpoints_of(people_template), checkpoints_of(target))


def new_project(tmp_path, name: str, rows: pd.DataFrame, gate: dict, *, slices=("queue",),
                holdout=("--fraction", "0.3", "--stratify", "queue")) -> None:
    """A qualified project with its roles, its locked gate, its data and its holdout: all through the CLI."""
    ok("projects", "create", name, "--description", "bring your own student", who="root")
    for user, role in PEOPLE.items():
        ok("roles", "assign", name, user, role, who="root")
    ok("qualify", "record", name, "--file", _yaml(tmp_path, "q.yaml", good_qualification()), "--verdict",
       "proceed", who="spon")
    ok("gate", "lock", name, "--file", _yaml(tmp_path, "gate.yaml", gate), who="spon")
    path = tmp_path / f"{name}.csv"
    rows.to_csv(path, index=False)
    imported = ok("data", "import", name, str(path), "--id", "id", "--text", "text", "--reference", "reference",
                  *[x for s in slices for x in ("--slice", s)], who="drv")
    dataset = re.search(r"dataset #(\d+)", imported).group(1)
    ok("data", "holdout", name, dataset, *holdout, who="drv")


def exported(tmp_path, name: str) -> pd.DataFrame:
    out = tmp_path / "holdout.csv"
    ok("data", "holdout-export", name, "--out", str(out), who="drv")
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def tickets(n: int = 400) -> pd.DataFrame:
    rng = random.Random(5)
    rows = []
    for i in range(n):
        queue = "security" if i % 8 == 0 else QUEUES[i % 3]
        words = rng.sample(WORDS, 5) + [KEYS[queue], f"n{i}"]
        rng.shuffle(words)
        rows.append({"id": f"T{i:04d}", "text": " ".join(words), "reference": queue, "queue": queue})
    return pd.DataFrame(rows)


def triage_gate(**overrides) -> dict:
    spec = {"metric": "accuracy", "quality_floor": {"kind": "absolute", "value": 0.9},
            "slice_floors": [{"column": "queue", "value": "security", "floor": 0.9, "min_n": 10}],
            "severe_errors": {"classes": [], "max_rate": 0.05}, "p95_latency_ms": 500.0, "cost_per_1k": 1.0,
            "payback_months": 12.0}
    spec.update(overrides)
    return spec


def predictions(held: pd.DataFrame, truth: pd.DataFrame, *, wrong_on: str | None = None) -> pd.DataFrame:
    answer = held["id"].map(truth.set_index("id")["reference"])
    student = answer.where(answer != wrong_on, "billing") if wrong_on else answer
    return pd.DataFrame({"id": held["id"], "student": student, "teacher": answer, "confidence": 0.9})


@pytest.fixture
def saved_student(tmp_path):
    """A local model directory of the n-gram family, as a team would hand over with its predictions."""
    from core.ml.students import NgramStudent

    path = tmp_path / "their-student"
    NgramStudent(labels=QUEUES, buckets=4096, dim=16).save(path)
    return path


def _ship(name: str, evaluation: int, *covers: str) -> str:
    ok("review", "threshold", name, str(evaluation), "--threshold", "0.5", who="val")
    ok("review", "signoff", name, str(evaluation), "--approve", "--comment", "checked", *covers, who="val")
    return ok("decide", name, "--decision", "ship", "--evaluation", str(evaluation), "--rationale", "passes",
              who="spon")
