"""Shared helpers for the data tests: the routing project, small files, and a snapshot of what is stored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlmodel import Session, func, select

from core.access import projects
from core.data import importer
from core.demo import seed as demo_mod
from core.store.artifacts import data_dir
from core.store.models import Artifact, AuditEvent, Dataset, Holdout, Project, User


def routing(session: Session) -> Project:
    return projects.get_project(session, demo_mod.ROUTING)


def snapshot(session: Session) -> dict:
    """Row counts of what an import writes, and the files under the artifacts folder."""
    counts = {m.__name__: session.exec(select(func.count()).select_from(m)).one()
              for m in (Dataset, Artifact, AuditEvent, Holdout)}
    root = data_dir() / "artifacts"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return {"counts": counts, "files": files}


def csv_bytes(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode("utf-8")


QUEUES = ["billing", "refund", "shipping", "legal_compliance"]
CHANNELS = ["email", "chat"]


def ticket_rows(n: int = 200, *, seed: int = 0) -> list[dict]:
    """Distinct short tickets with queue and channel slices (legal_compliance is rare: every 20th)."""
    import random

    rng = random.Random(seed)
    words = ["order", "late", "card", "charged", "twice", "password", "reset", "box", "damaged", "invoice",
             "missing", "account", "locked", "refund", "please", "help", "urgent", "parcel", "address", "wrong"]
    rows = []
    for i in range(n):
        queue = "legal_compliance" if i % 20 == 0 else QUEUES[i % 3]
        text = f"ticket {i} " + " ".join(rng.sample(words, 6))
        rows.append({"ticket_id": f"T{i:05d}", "body": text, "queue": queue, "channel": CHANNELS[i % 2],
                     "label": queue})
    return rows


def import_rows(session: Session, actor: User, rows: list[dict], *, purpose: str = "prompts",
                name: str = "tickets", slices: tuple[str, ...] = ("queue", "channel")) -> Dataset:
    return importer.import_dataset(
        session, actor=actor, project=routing(session), data=csv_bytes(rows), filename=f"{name}.csv",
        mapping={"id": "ticket_id", "text": "body", "slices": list(slices), "reference": "label"},
        purpose=purpose, name=name,
    )


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
