"""Drift figures checked against a direct numpy and scipy computation on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import live_like, ship, write_log
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from core.evaluation.runs import load_predictions
from core.rollout import config, drift


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def direct_psi(ref_counts, live_counts, eps=drift.EPSILON) -> float:
    p = np.asarray(ref_counts, float) / np.sum(ref_counts) + eps
    q = np.asarray(live_counts, float) / np.sum(live_counts) + eps
    return float(entropy(p, q) + entropy(q, p))  # PSI is the symmetrised Kullback-Leibler divergence


def test_numeric_psi_and_js_match_scipy():
    rng = np.random.default_rng(3)
    ref, live = rng.normal(0, 1, 2000), rng.normal(0.4, 1.2, 700)
    labels, r, c = drift.numeric_bins(pd.Series(ref), pd.Series(live))
    edges = np.concatenate([[-np.inf], np.quantile(ref, np.linspace(0, 1, 11)[1:-1]), [np.inf]])
    ref_counts, live_counts = np.histogram(ref, edges)[0], np.histogram(live, edges)[0]
    assert len(labels) == 10 and list(r) == list(ref_counts) and list(c) == list(live_counts)
    assert drift.psi(r, c) == pytest.approx(direct_psi(ref_counts, live_counts))
    assert drift.js_distance(r, c) == pytest.approx(jensenshannon(ref_counts, live_counts, base=2))


def test_categorical_bins_keep_new_values_and_empty_bins_stay_finite():
    ref = pd.Series(["a"] * 70 + ["b"] * 30)
    live = pd.Series(["a"] * 10 + ["c"] * 40)
    cats, r, c = drift.categorical_bins(ref, live)
    assert cats == ["a", "b", "c"] and list(r) == [70, 30, 0] and list(c) == [10, 0, 40]
    value = drift.psi(r, c)
    assert np.isfinite(value) and value == pytest.approx(direct_psi(r, c))
    assert drift.js_distance(r, c) == pytest.approx(jensenshannon([0.7, 0.3, 0], [0.2, 0, 0.8], base=2))
    assert drift.psi(r, r) == 0.0 and drift.js_distance(r, r) == 0.0


def test_status_uses_the_project_thresholds(session, demo, shipped):
    assert [drift.status_of(v, warn=0.1, alert=0.2) for v in (0.05, 0.1, 0.2, None)] == [
        "ok", "warn", "alert", "no data"]
    config.set_config(session, actor=demo["oscar"], project=shipped, changes={"psi_warn": 0.3, "psi_alert": 0.6})
    report = drift.drift_report(session, project_id=shipped.id)
    assert (report.psi_warn, report.psi_alert) == (0.3, 0.6)


def test_live_traffic_like_the_training_data_does_not_drift(session, shipped):
    evaluation = drift.shipped_evaluation(session, project_id=shipped.id)
    write_log(shipped.id, live_like(load_predictions(session, evaluation)))
    report = drift.drift_report(session, project_id=shipped.id)
    assert {f.feature for f in report.features} == {"slice:category", "slice:language", "input_chars",
                                                     "student_confidence"}
    assert all(f.psi == pytest.approx(0.0, abs=1e-12) and f.status == "ok" for f in report.features)
    assert report.status == "ok"


def test_a_surge_of_threats_is_an_alert_with_scipy_figures(session, shipped):
    predictions = load_predictions(session, drift.shipped_evaluation(session, project_id=shipped.id))
    write_log(shipped.id, live_like(predictions, n=400))
    report = drift.drift_report(session, project_id=shipped.id)
    category = next(f for f in report.features if f.feature == "slice:category")
    cats = sorted(predictions["category"].unique())
    live = pd.concat([predictions["category"], pd.Series(["threat"] * 400)])
    ref_counts = predictions["category"].value_counts().reindex(cats).to_numpy()
    live_counts = live.value_counts().reindex(cats).to_numpy()
    assert category.psi == pytest.approx(direct_psi(ref_counts, live_counts))
    assert category.js == pytest.approx(jensenshannon(ref_counts, live_counts, base=2))
    assert category.status == "alert" and report.status == "alert"
    threat = next(b for b in category.bins if b["bin"] == "threat")
    assert threat["live_share"] == pytest.approx(440 / 800) and threat["reference_n"] == 40


def test_the_worst_feature_is_the_highest_measured_psi_and_none_without_one():
    def feature(name: str, psi: float | None) -> drift.FeatureDrift:
        return drift.FeatureDrift(feature=name, kind="numeric", psi=psi, js=None, status="ok", n_reference=1,
                                  n_live=1)

    def report(*features: drift.FeatureDrift) -> drift.DriftReport:
        return drift.DriftReport(project_id=1, n_live=1, psi_warn=0.1, psi_alert=0.2, reference="test",
                                 features=list(features))

    assert report(feature("a", None), feature("b", 0.05), feature("c", 0.3), feature("d", 0.3)).worst().feature == "c"
    assert report(feature("a", None)).worst() is None and report().worst() is None
