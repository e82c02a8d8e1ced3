"""Coverage audit: slice shares of the prompt set against production, the gate's slices against their
minimum sample sizes, and oversampling of rare critical slices.

Results are plain dataclasses; the page draws them (``CoverageReport.shares_frame``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from sqlmodel import Session

from core.access.projects import require_role
from core.data import datasets, holdout
from core.data.datasets import COPY_MARK
from core.domain.errors import InvalidInput
from core.domain.roles import Role
from core.gate import gate
from core.store.models import Dataset, Project, User

# A slice value under this share of its column's rows is listed as sparse.
SPARSE_SHARE = 0.02
MAX_COPIES = 1_000_000


@dataclass(frozen=True)
class SliceShare:
    column: str
    value: str
    count: int
    share: float
    production_count: int | None = None
    production_share: float | None = None


@dataclass(frozen=True)
class ColumnCoverage:
    column: str
    shares: list[SliceShare]
    # Jensen-Shannon distance (base 2, 0 = same mix, 1 = disjoint) to production; None without production.
    js_distance: float | None


@dataclass(frozen=True)
class FloorCheck:
    """A slice the locked gate names, against its minimum sample size."""

    column: str
    value: str
    min_n: int
    count: int  # rows of the dataset outside the holdout
    in_holdout: int

    @property
    def ok(self) -> bool:
        return self.count >= self.min_n

    @property
    def short_by(self) -> int:
        return max(self.min_n - self.count, 0)


@dataclass(frozen=True)
class OversampleItem:
    column: str
    value: str
    have: int
    target: int

    @property
    def copies(self) -> int:
        return max(self.target - self.have, 0)


@dataclass(frozen=True)
class CoverageReport:
    dataset_id: int
    production_id: int | None
    n_rows: int
    columns: list[ColumnCoverage]
    floors: list[FloorCheck]
    sparse: list[SliceShare]
    missing: list[str]  # one sentence per slice with no rows, or slice column absent
    plan: list[OversampleItem] = field(default_factory=list)

    def shares_frame(self) -> pd.DataFrame:
        """Tidy rows (column, value, source, share, count) to plot prompt against production shares."""
        rows = []
        for col in self.columns:
            for s in col.shares:
                rows.append((s.column, s.value, "prompts", s.share, s.count))
                if s.production_share is not None:
                    rows.append((s.column, s.value, "production", s.production_share, s.production_count))
        return pd.DataFrame(rows, columns=["column", "value", "source", "share", "count"])


def _column_coverage(df: pd.DataFrame, prod: pd.DataFrame | None, col: str) -> ColumnCoverage:
    counts = df[col].astype(str).value_counts()
    pcounts = prod[col].astype(str).value_counts() if prod is not None and col in prod.columns else None
    values = sorted(set(counts.index) | (set(pcounts.index) if pcounts is not None else set()))
    c = counts.reindex(values, fill_value=0)
    shares = [SliceShare(col, v, int(c[v]), float(c[v] / max(len(df), 1))) for v in values]
    if pcounts is None:
        return ColumnCoverage(col, shares, None)
    p = pcounts.reindex(values, fill_value=0)
    shares = [SliceShare(s.column, s.value, s.count, s.share, int(p[s.value]), float(p[s.value] / p.sum()))
              for s in shares]
    distance = float(jensenshannon(c.to_numpy(float), p.to_numpy(float), base=2))
    return ColumnCoverage(col, shares, round(distance, 4) if np.isfinite(distance) else None)


def _floors(session: Session, project: Project, df: pd.DataFrame) -> tuple[list[FloorCheck], list[str]]:
    locked = gate.current(session, project_id=project.id)
    if locked is None:
        return [], []
    held = holdout.holdout_ids(session, project_id=project.id)
    inside = df["id"].astype(str).isin(held).to_numpy()
    checks, missing = [], []
    for f in gate.spec_of(locked).slice_floors:
        column, value, min_n = f.column, f.value, f.min_n
        if column not in df.columns:
            missing.append(f"the gate's slice {column}={value} cannot be checked: the dataset has no {column} "
                           "column; map it as a slice when importing.")
            checks.append(FloorCheck(column, value, min_n, 0, 0))
            continue
        match = (df[column].astype(str) == value).to_numpy()
        checks.append(FloorCheck(column, value, min_n, int((match & ~inside).sum()), int((match & inside).sum())))
        if not match.any():
            missing.append(f"the gate's slice {column}={value} has no rows: import data for it before "
                           f"training (the gate needs {min_n}).")
    return checks, missing


def coverage(session: Session, *, project: Project, dataset_id: int, production_id: int | None = None,
             sparse_share: float = SPARSE_SHARE) -> CoverageReport:
    """The coverage audit of a dataset, against a production dataset when one is given."""
    dataset = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    df = datasets.rows(session, dataset)
    prod = None
    if production_id is not None:
        prod_ds = datasets.get_dataset(session, project=project, dataset_id=production_id)
        prod = datasets.rows(session, prod_ds)
    columns = [_column_coverage(df, prod, c) for c in datasets.slice_columns(df)]
    floors, missing = _floors(session, project, df)
    sparse = [s for c in columns for s in c.shares if 0 < s.share < sparse_share]
    for c in columns:
        missing += [f"{s.column}={s.value} is {s.production_share:.1%} of production but has no rows in "
                    "the prompt set." for s in c.shares if s.count == 0 and s.production_count]
    plan = [OversampleItem(f.column, f.value, f.count, f.min_n) for f in floors
            if 0 < f.count < f.min_n]
    return CoverageReport(dataset_id=dataset.id, production_id=production_id, n_rows=len(df), columns=columns,
                          floors=floors, sparse=sparse, missing=missing, plan=plan)


def apply_oversample(session: Session, *, actor: User, project: Project, dataset_id: int,
                     plan: list[OversampleItem] | None = None, seed: int = 0) -> Dataset:
    """Store the dataset with copies of rare slices' rows (outside the holdout) as a new version."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="oversample data")
    parent = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    plan = coverage(session, project=project, dataset_id=dataset_id).plan if plan is None else plan
    plan = [p for p in plan if p.copies > 0]
    if not plan:
        raise InvalidInput(f"dataset #{parent.id} meets every slice minimum the gate names: nothing to "
                           "oversample.", field="plan")
    df = datasets.rows(session, parent)
    held = holdout.holdout_ids(session, project_id=project.id)
    rng = np.random.default_rng(seed)
    copies = [_copies(df, item, held, rng) for item in plan]
    out = pd.concat([df, *copies], ignore_index=True)
    stats = {"parent_rows": len(df), "added": int(sum(len(c) for c in copies)), "seed": seed,
             "plan": [{"column": p.column, "value": p.value, "have": p.have, "target": p.target,
                       "copies": p.copies} for p in plan]}
    return datasets.store(session, actor=actor, project=project, df=out, name=f"{parent.name[:105]} (oversampled)",
                          purpose=parent.purpose, operation="oversample", mapping=parent.mapping, stats=stats,
                          parent=parent)


def _copies(df: pd.DataFrame, item: OversampleItem, held: set[str], rng: np.random.Generator) -> pd.DataFrame:
    if item.column not in df.columns:
        raise InvalidInput(f"the dataset has no slice column {item.column!r} to oversample.", field="plan")
    if item.copies > MAX_COPIES:
        raise InvalidInput(f"{item.copies:,} copies of {item.column}={item.value} is more than {MAX_COPIES:,}; "
                           "collect more real data for that slice.", field="plan")
    pool = df[(df[item.column].astype(str) == item.value) & ~df["id"].astype(str).isin(held)]
    if pool.empty:
        raise InvalidInput(f"{item.column}={item.value} has no rows outside the holdout to copy; import data for "
                           "that slice instead.", field="plan")
    # Cycle through the slice's rows in a shuffled order so every row is copied about equally often.
    picks = np.resize(rng.permutation(len(pool)), item.copies)
    out = pool.iloc[picks].copy()
    round_no = np.arange(item.copies) // len(pool) + 1
    out["id"] = [f"{i}{COPY_MARK}{item.column}={item.value}#{k}" for i, k in zip(out["id"], round_no, strict=True)]
    return out
