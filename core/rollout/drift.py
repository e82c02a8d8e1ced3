"""Drift of live inputs against what the student learned from: slice shares, input length and student
confidence, each scored with PSI and the Jensen-Shannon distance and judged against the project's thresholds.

Bins come from the reference: its categories for slices, its quantiles for numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from sqlmodel import Session

from core.data import datasets, holdout
from core.evaluation import rounds
from core.evaluation.runs import load_predictions
from core.notify.inbox import notice
from core.notify.rules import Kind
from core.rollout import config, logs, rollout
from core.store.models import Dataset, Evaluation, TeacherRun, TrainingRun, utcnow

EPSILON = 1e-4  # stands in for an empty bin, so PSI stays finite
QUANTILE_BINS = 10


# --------------------------------------------------------------------------- figures


def psi(reference: np.ndarray, live: np.ndarray, *, eps: float = EPSILON) -> float:
    """Population stability index of two binned distributions (counts or shares)."""
    p = _shares(reference) + eps
    q = _shares(live) + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, live: np.ndarray) -> float:
    return float(jensenshannon(_shares(reference), _shares(live), base=2))


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total else counts


def categorical_bins(reference: pd.Series, live: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts per category: the reference's categories, then any seen only live (new values are drift too)."""
    ref, cur = reference.dropna().astype(str), live.dropna().astype(str)
    cats = sorted(ref.unique()) + sorted(set(cur.unique()) - set(ref.unique()))
    return (cats, ref.value_counts().reindex(cats, fill_value=0).to_numpy(),
            cur.value_counts().reindex(cats, fill_value=0).to_numpy())


def quantile_edges(reference: np.ndarray, n_bins: int = QUANTILE_BINS) -> np.ndarray:
    """Inner edges at the reference's quantiles, open at both ends."""
    inner = np.unique(np.quantile(np.asarray(reference, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def numeric_bins(reference: pd.Series, live: pd.Series, n_bins: int = QUANTILE_BINS):
    ref, cur = reference.dropna().to_numpy(float), live.dropna().to_numpy(float)
    edges = quantile_edges(ref, n_bins)
    labels = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return labels, np.histogram(ref, edges)[0], np.histogram(cur, edges)[0]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FeatureDrift:
    feature: str  # "slice:queue", "input_chars", "student_confidence"
    kind: str  # categorical, numeric
    psi: float | None
    js: float | None
    status: str  # ok, warn, alert, no data
    n_reference: int
    n_live: int
    bins: list[dict] = field(default_factory=list)  # bin, reference_share, live_share, reference_n, live_n


@dataclass(frozen=True)
class DriftReport:
    project_id: int
    n_live: int
    psi_warn: float
    psi_alert: float
    reference: str  # where the training-side figures come from
    features: list[FeatureDrift]

    @property
    def status(self) -> str:
        found = {f.status for f in self.features}
        return next((s for s in ("alert", "warn", "ok") if s in found), "no data")

    def alerts(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.status == "alert"]

    def worst(self) -> FeatureDrift | None:
        """The feature with the highest measured PSI (the first on a tie); None when no PSI could be measured."""
        return max((f for f in self.features if f.psi is not None), key=lambda f: f.psi or 0.0, default=None)


def status_of(value: float | None, *, warn: float, alert: float) -> str:
    if value is None:
        return "no data"
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def feature_drift(feature: str, kind: str, labels: list[str], ref: np.ndarray, cur: np.ndarray, *,
                  warn: float, alert: float) -> FeatureDrift:
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    value = psi(ref, cur) if n_ref and n_cur else None
    js = js_distance(ref, cur) if n_ref and n_cur else None
    ps, qs = _shares(ref), _shares(cur)
    bins = [{"bin": b, "reference_share": float(p), "live_share": float(q), "reference_n": int(rn),
             "live_n": int(cn)} for b, p, q, rn, cn in zip(labels, ps, qs, ref, cur, strict=True)]
    return FeatureDrift(feature, kind, value, js, status_of(value, warn=warn, alert=alert), n_ref, n_cur, bins)


@dataclass(frozen=True)
class Reference:
    """The training side: its rows (text and slice columns) and the student's confidences on the holdout."""

    rows: pd.DataFrame
    confidence: pd.Series
    source: str


def shipped_evaluation(session: Session, *, project_id: int) -> Evaluation | None:
    evaluation_id = rollout.state(session, project_id=project_id).evaluation_id
    if evaluation_id is None:
        shipped = [d for d in rounds.decisions(session, project_id=project_id)
                   if d.decision == rounds.Choice.SHIP]
        evaluation_id = shipped[-1].evaluation_id if shipped else None
    return session.get(Evaluation, evaluation_id) if evaluation_id else None


def reference(session: Session, *, project_id: int) -> Reference | None:
    """The prompts the student's teacher run labelled, minus the holdout; for an imported evaluation
    (no training run on record) the evaluation's own examples stand in."""
    evaluation = shipped_evaluation(session, project_id=project_id)
    if evaluation is None:
        return None
    predictions = load_predictions(session, evaluation)
    confidence = predictions.get("student_confidence", pd.Series(dtype=float))
    run = session.get(TrainingRun, evaluation.training_run_id) if evaluation.training_run_id else None
    if run is None:
        return Reference(predictions, confidence, f"evaluation #{evaluation.id} examples")
    teacher_run = session.get(TeacherRun, run.teacher_run_id)
    rows = datasets.rows(session, session.get(Dataset, teacher_run.dataset_id))
    rows = rows[~rows["id"].astype(str).isin(holdout.holdout_ids(session, project_id=project_id))]
    return Reference(rows, confidence, f"dataset #{teacher_run.dataset_id} minus the holdout")


def drift_report(session: Session, *, project_id: int, since=None,
                 live: pd.DataFrame | None = None) -> DriftReport:
    settings = config.get_config(session, project_id=project_id)
    warn, alert = settings.psi_warn, settings.psi_alert
    live = logs.read_requests(project_id, since=since) if live is None else live
    ref = reference(session, project_id=project_id)
    if ref is None:
        return DriftReport(project_id, len(live), warn, alert, "no shipped evaluation", [])
    features = []
    live_slices = logs.slice_frame(live)
    for column in [c for c in live_slices.columns if c in ref.rows.columns and c not in datasets.BASE_COLUMNS]:
        labels, r, c = categorical_bins(ref.rows[column], live_slices[column])
        features.append(feature_drift(f"slice:{column}", "categorical", labels, r, c, warn=warn, alert=alert))
    lengths = ref.rows["text"].astype(str).str.len()
    for name, r_values, c_values in (("input_chars", lengths, live["input_chars"]),
                                     ("student_confidence", ref.confidence, live["student_confidence"])):
        if r_values.notna().any():
            labels, r, c = numeric_bins(r_values, c_values)
            features.append(feature_drift(name, "numeric", labels, r, c, warn=warn, alert=alert))
    return _alerted(session, DriftReport(project_id, len(live), warn, alert, ref.source, features))


def _alerted(session: Session, report: DriftReport) -> DriftReport:
    """The report, its operators and drivers told when features are at alert: once a day per set of them."""
    alerts = report.alerts()
    if alerts:
        notice(session, kind=Kind.DRIFT_ALERT, project_id=report.project_id,
               detail=", ".join(f"{f.feature} PSI {f.psi or 0:.3f}" for f in alerts),
               dedupe=f"drift:{report.project_id}:{utcnow().date()}:{','.join(f.feature for f in alerts)}")
    return report
