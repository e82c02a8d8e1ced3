"""Deduplication: exact duplicates after normalising case and whitespace, then near duplicates by MinHash/LSH.

``find_duplicates`` only computes (the preview shown before anything is
dropped); ``apply_dedup`` stores the surviving rows as a new dataset version.
The first row of each group of duplicates, in file order, is the one kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlmodel import Session

from core.access.projects import require_role
from core.data import datasets, similarity
from core.domain.errors import InvalidInput
from core.domain.roles import Role
from core.store.models import Dataset, Project, User

# Below 0.5 unrelated short texts start to match; above 0.95 LSH has too few bands (exact dedup covers it).
MIN_THRESHOLD, MAX_THRESHOLD = 0.5, 0.95


@dataclass(frozen=True)
class DupPair:
    """A dropped row and the row kept in its place."""

    kind: str  # "exact" or "near"
    kept_id: str
    kept_text: str
    dropped_id: str
    dropped_text: str
    similarity: float


@dataclass(frozen=True)
class DedupReport:
    n_rows: int
    exact: int  # rows dropped as exact duplicates (after normalising)
    near: int  # rows dropped as near duplicates
    threshold: float
    examples: list[DupPair]
    drop: np.ndarray = field(repr=False, compare=False)  # bool per row: dropped

    @property
    def kept(self) -> int:
        return self.n_rows - self.exact - self.near

    def sentence(self) -> str:
        return (f"{self.n_rows:,} rows: {self.exact:,} exact and {self.near:,} near duplicates "
                f"(similarity >= {self.threshold:g}); {self.kept:,} rows kept.")


def check_threshold(threshold: float) -> float:
    if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
        raise InvalidInput(f"threshold {threshold} is outside {MIN_THRESHOLD} to {MAX_THRESHOLD}; give the share of "
                           "shared words (e.g. 0.8) above which two texts count as near duplicates.",
                           field="threshold")
    return float(threshold)


def find_duplicates(df: pd.DataFrame, *, threshold: float = similarity.DEFAULT_THRESHOLD,
                    examples: int = 5) -> DedupReport:
    """Which rows of a dataset-schema table are duplicates; writes nothing."""
    threshold = check_threshold(threshold)
    norm = similarity.normalise(df["text"]).reset_index(drop=True)
    exact = norm.duplicated(keep="first").to_numpy()
    unique_rows = np.flatnonzero(~exact)
    sig, usable = similarity.signatures(norm.iloc[unique_rows])
    left, right, _ = similarity.candidate_pairs(sig, usable, threshold=threshold)
    root = similarity.clusters(len(unique_rows), left, right)
    near_local = np.flatnonzero(root != np.arange(len(unique_rows)))
    drop = exact.copy()
    drop[unique_rows[near_local]] = True
    ids, texts = df["id"].astype(str).to_numpy(), df["text"].astype(str).to_numpy()
    pairs = _exact_examples(norm, exact, ids, texts, examples)
    near_sim = similarity.similarity(sig, root[near_local[:examples]], near_local[:examples])
    pairs += [DupPair("near", ids[unique_rows[root[i]]], texts[unique_rows[root[i]]], ids[unique_rows[i]],
                      texts[unique_rows[i]], round(float(s), 3))
              for i, s in zip(near_local[:examples], near_sim, strict=True)]
    return DedupReport(n_rows=len(df), exact=int(exact.sum()), near=len(near_local), threshold=threshold,
                       examples=pairs, drop=drop)


def _exact_examples(norm: pd.Series, exact: np.ndarray, ids, texts, k: int) -> list[DupPair]:
    out = []
    for i in np.flatnonzero(exact)[:k]:
        first = int(np.argmax((norm == norm.iloc[i]).to_numpy()))
        out.append(DupPair("exact", ids[first], texts[first], ids[i], texts[i], 1.0))
    return out


def preview_dedup(session: Session, *, project: Project, dataset_id: int,
                  threshold: float = similarity.DEFAULT_THRESHOLD, examples: int = 5) -> DedupReport:
    dataset = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    return find_duplicates(datasets.rows(session, dataset), threshold=threshold, examples=examples)


def apply_dedup(session: Session, *, actor: User, project: Project, dataset_id: int,
                threshold: float = similarity.DEFAULT_THRESHOLD) -> tuple[Dataset, DedupReport]:
    """Store the dataset without its duplicates as a new version (driver only)."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="deduplicate data")
    parent = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    df = datasets.rows(session, parent)
    report = find_duplicates(df, threshold=threshold)
    if not report.drop.any():
        raise InvalidInput(f"dataset #{parent.id} has no duplicates at threshold {report.threshold:g}: nothing "
                           "to drop, keep using it as it is.", field="dataset")
    stats = {"parent_rows": report.n_rows, "dropped_exact": report.exact, "dropped_near": report.near,
             "threshold": report.threshold}
    child = datasets.store(session, actor=actor, project=project, df=df[~report.drop], name=_name(parent.name),
                           purpose=parent.purpose, operation="dedup", mapping=parent.mapping, stats=stats,
                           parent=parent)
    return child, report


def _name(parent: str) -> str:
    return f"{parent[:110]} (dedup)"
