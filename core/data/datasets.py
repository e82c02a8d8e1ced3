"""Dataset versions: looking them up, reading their rows, and storing a new one with its audit event."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.domain.errors import NotFound
from core.domain.mapping import StoredMapping, read_mapping
from core.domain.roles import Role
from core.domain.textsafe import csv_bytes, csv_cell
from core.store import audit
from core.store.artifacts import load_table, store_table
from core.store.models import Artifact, Dataset, Project, User

PURPOSES = ("prompts", "production")
# The schema's fixed columns; every other column of a dataset is a slice.
BASE_COLUMNS = ("id", "text", "reference", "timestamp")


def get_dataset(session: Session, *, project: Project, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, int(dataset_id))
    if dataset is None or dataset.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no dataset #{dataset_id}: pick one from "
                       "`stillroom data list`.", field="dataset")
    return dataset


def list_datasets(session: Session, *, project_id: int) -> list[Dataset]:
    return list(session.exec(select(Dataset).where(Dataset.project_id == project_id)
                             .order_by(col(Dataset.id))).all())


def rows(session: Session, dataset: Dataset) -> pd.DataFrame:
    """The dataset's rows, after checking the file still has its recorded SHA-256."""
    return load_table(session.get(Artifact, dataset.artifact_id))


def slice_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in BASE_COLUMNS]


def csv_safe(value: object) -> str:
    """A cell that a spreadsheet shows as text, never runs (the one rule every export uses: core.domain.textsafe)."""
    return csv_cell(value)


def ids_csv(session: Session, *, project: Project, dataset_id: int) -> bytes:
    """The ids of a dataset version as a one-column CSV (formula-safe), so outputs made elsewhere can match it."""
    dataset = get_dataset(session, project=project, dataset_id=dataset_id)
    return csv_bytes(rows(session, dataset)[["id"]])


def mapping_of(dataset: Dataset) -> StoredMapping:
    """The column mapping a dataset was imported with, typed (RecordTampered when it no longer fits)."""
    return read_mapping(dataset.mapping, dataset_id=dataset.id)


def describe_mapping(mapping: StoredMapping | dict[str, Any]) -> str:
    """The stored column mapping in words, as the import's success line echoes it."""
    m = read_mapping(mapping)
    parts = [f"id from {m.id!r}", f"text from {m.text!r}"]
    parts.append("slices " + ", ".join(repr(c) for c in m.slices) if m.slices else "no slice columns")
    parts.append(f"reference from {m.reference!r}" if m.reference else "no reference")
    if m.timestamp:
        parts.append(f"timestamp from {m.timestamp!r}")
    if m.labels:
        parts.append("labels " + ", ".join(m.labels))
    return "; ".join(parts)


def store(
    session: Session, *, actor: User, project: Project, df: pd.DataFrame, name: str, purpose: str,
    operation: str, mapping: dict, stats: dict, parent: Dataset | None = None,
) -> Dataset:
    """Write ``df`` as the artifact of a new Dataset and record it, in one transaction.

    The caller has validated everything; if recording fails the file is removed
    again so no unrecorded artifact is left behind.
    """
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing=f"{operation} data")
    kind = "production" if purpose == "production" else "inputs"
    try:
        art = store_table(session, project=project, actor=actor, df=df.reset_index(drop=True), kind=kind,
                          meta={"operation": operation})
        dataset = Dataset(
            project_id=project.id, name=name, purpose=purpose, artifact_id=art.id,
            parent_id=parent.id if parent else None, operation=operation, mapping=mapping, stats=stats,
            n_rows=len(df), created_by=actor.id,
        )
        session.add(dataset)
        session.flush()
        audit.record(session, actor=actor, action=f"dataset.{operation}", entity="dataset",
                     entity_id=dataset.id, project_id=project.id,
                     payload={"name": name, "purpose": purpose, "parent_id": dataset.parent_id,
                              "n_rows": len(df), "sha256": art.sha256, "stats": stats})
        session.commit()
    except BaseException:
        session.rollback()  # and core.store.artifacts removes the file this transaction wrote
        raise
    return dataset


COPY_MARK = "~os"  # an oversampled copy's id: "<original id>~os<column>=<value>#<round>"


def copy_origin(ids: pd.Series) -> pd.Series:
    """The original id of each oversampled copy (None for a real row)."""
    ids = ids.astype(str)
    origin = ids.str.split(COPY_MARK, n=1, regex=False).str[0]
    return origin.where(ids.str.contains(COPY_MARK, regex=False), None)
