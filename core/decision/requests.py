"""Whether the data the sponsor asked for has come in: each slice of the latest iterate decision's data request,
with what was added since (datasets imported or oversampled for training, holdout versions for the holdout),
which of them fulfil it, and whether it is met.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlmodel import Session

from core.data import datasets, holdout
from core.domain.requests import read_data_request
from core.evaluation.rounds import decisions
from core.store import vouched
from core.store.artifacts import load_table
from core.store.models import Artifact, Decision, HoldoutVersion, Project

TRAINING_OPERATIONS = ("import", "oversample")


@dataclass(frozen=True)
class SliceRequest:
    decision_id: int
    round: int
    column: str
    value: str
    wanted_for: str  # "training" or "holdout"
    wanted: int  # more examples asked for
    added: int  # examples of the slice added since the decision
    fulfilled_by: list[str]  # "dataset #4 (oversample, 30 rows)", "holdout version 2 (12 rows)"

    @property
    def met(self) -> bool:
        return self.added >= self.wanted

    def sentence(self) -> str:
        state = "met" if self.met else f"open: {self.wanted - self.added:,} to go"
        by = f" by {', '.join(self.fulfilled_by)}" if self.fulfilled_by else ""
        return (f"{self.column}={self.value}: {self.wanted:,} more {self.wanted_for} examples asked in round "
                f"{self.round}, {self.added:,} added{by}; {state}.")


def _in_slice(df: pd.DataFrame, column: str, value: str, *, besides: frozenset[str] = frozenset()) -> int:
    """Rows of the slice, leaving out the ids in ``besides``."""
    if column not in df.columns:
        return 0
    return int(((df[column].astype(str) == value) & ~df["id"].astype(str).isin(besides)).sum())


def _training_added(session: Session, project: Project, decision: Decision, column: str,
                    value: str) -> tuple[int, list[str]]:
    """Rows of the slice added to training data since the decision. A row that went into the holdout is never
    training data (training refuses it), so it does not count, whichever dataset brought it."""
    held = frozenset(holdout.holdout_ids(session, project_id=project.id))
    total, by = 0, []
    for ds in datasets.list_datasets(session, project_id=project.id):
        if ds.created_at < decision.created_at or ds.operation not in TRAINING_OPERATIONS or ds.purpose != "prompts":
            continue
        rows = _in_slice(datasets.rows(session, ds), column, value, besides=held)
        parent = datasets.rows(session, datasets.get_dataset(session, project=project, dataset_id=ds.parent_id)) \
            if ds.parent_id else None
        added = rows - (_in_slice(parent, column, value, besides=held) if parent is not None else 0)
        if added > 0:
            total += added
            by.append(f"dataset #{ds.id} ({ds.operation}, {added:,} rows)")
    return total, by


def _holdout_added(session: Session, project: Project, decision: Decision, column: str,
                   value: str) -> tuple[int, list[str]]:
    total, by = 0, []
    later = vouched.rows(session, HoldoutVersion, HoldoutVersion.project_id == project.id,
                         order_by=HoldoutVersion.version)
    previous = None
    for v in holdout.versions(session, project_id=project.id):
        rows = load_table(session.get(Artifact, v.artifact_id))
        count = _in_slice(rows, column, value)
        row = next((x for x in later if x.version == v.version), None)
        if previous is not None and row is not None and row.created_at >= decision.created_at and count > previous:
            total += count - previous
            by.append(f"holdout version {v.version} ({count - previous:,} rows)")
        previous = count
    return total, by


def status(session: Session, *, project: Project) -> list[SliceRequest]:
    """The latest iterate decision's requested slices and how far each has come."""
    asked = [d for d in decisions(session, project_id=project.id) if d.decision == "iterate" and d.data_request]
    if not asked:
        return []
    d = asked[-1]
    request = read_data_request(d.data_request, decision_id=d.id)
    out = []
    for w in request.slices if request else []:
        count = _holdout_added if w.for_ == "holdout" else _training_added
        added, by = count(session, project, d, w.column, str(w.value))
        out.append(SliceRequest(d.id, d.round, w.column, str(w.value), w.for_, w.more_examples, added, by))
    return out
