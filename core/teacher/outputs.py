"""The teacher-run table every adapter produces, and the interface adapters share.

Columns: id (str), label (str, or None when the answer could not be read as one
of the labels), confidence (float, NaN when unknown), probs (list of floats in
the run's label order, or None), raw (the teacher's raw answer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from core.domain.errors import GovernanceViolation, InvalidInput

COLUMNS = ("id", "label", "confidence", "probs", "raw")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Prediction:
    """One teacher answer."""

    label: str | None  # None: the answer named none of the labels (recorded as unparseable)
    confidence: float | None  # the label's probability, or None where the teacher gave none
    probs: list[float] | None  # a distribution in the run's label order, where the teacher gave one
    raw: str


class Adapter(Protocol):
    """A teacher that answers texts: ``predict`` returns one Prediction per text, in order."""

    name: str

    def predict(self, texts: Sequence[str], *, labels: list[str], progress: Progress | None = None
                ) -> list[Prediction]: ...


def require_listed(value: str, *, what: str, setting: str, allowed: Sequence[str]) -> None:
    """GovernanceViolation unless the admin listed ``value`` in ``setting`` (an allow-list of teacher settings)."""
    if value not in allowed:
        raise GovernanceViolation(
            f"{what} {value!r} is not on the admin's list ({setting}: {', '.join(allowed) or 'empty'}): use a "
            "listed one, or ask the admin who runs the server to add it.")


def check_labels(labels: Sequence[str], *, where: str = "labels") -> list[str]:
    """A non-empty list of distinct, non-blank label names."""
    out = [str(label).strip() for label in labels]
    if len(out) < 2:
        raise InvalidInput(f"{where}: a teacher needs at least two labels; give the full label set.", field="labels")
    if any(not label for label in out):
        raise InvalidInput(f"{where}: a label is blank; remove it or name it.", field="labels")
    dupes = sorted({label for label in out if out.count(label) > 1})
    if dupes:
        raise InvalidInput(f"{where}: {', '.join(dupes)} appear more than once; list each label once.",
                           field="labels")
    return out


def to_frame(ids: Sequence[str], predictions: Sequence[Prediction]) -> pd.DataFrame:
    """The run table, in the teacher-run schema."""
    return pd.DataFrame({
        "id": pd.Series([str(i) for i in ids], dtype=object),
        "label": pd.Series([p.label for p in predictions], dtype=object),
        "confidence": pd.Series([np.nan if p.confidence is None else float(p.confidence) for p in predictions],
                                dtype="float64"),
        "probs": pd.Series([None if p.probs is None else [float(x) for x in p.probs] for p in predictions],
                           dtype=object),
        "raw": pd.Series([p.raw or "" for p in predictions], dtype=object),
    }, columns=list(COLUMNS))


def has_probs(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return len(value) > 0


def run_stats(frame: pd.DataFrame, *, labels: list[str], references: pd.Series | None = None) -> dict:
    """Figures recorded with a run: label counts, unparseable answers, agreement with references."""
    answered = frame["label"].notna()
    stats = {
        "n_rows": int(len(frame)),
        "n_unparseable": int((~answered).sum()),
        "n_with_probs": int(frame["probs"].map(has_probs).sum()),
        "label_counts": {label: int((frame["label"] == label).sum()) for label in labels},
        "mean_confidence": _mean(frame["confidence"]),
    }
    if references is not None:
        ref = frame["id"].map(references)
        known = ref.notna() & ref.astype(str).str.strip().ne("") & answered
        stats["n_with_reference"] = int(known.sum())
        stats["agreement_with_reference"] = (
            float((frame.loc[known, "label"] == ref[known].astype(str).str.strip()).mean()) if known.any() else None)
    return stats


def _mean(values: pd.Series) -> float | None:
    v = values.dropna()
    return float(v.mean()) if len(v) else None
