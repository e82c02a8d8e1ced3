"""Reading the request log: a line cut off by a killed process is skipped, the rest is summarised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import request, traffic, write_log

from core.rollout import logs

PROJECT = 7


def test_truncated_last_line_is_skipped(db_url):
    write_log(PROJECT, traffic(3, stage="shadow"), partial_tail='{"ts": "2026-01-01T00:00:00+00:00", "requ')
    df = logs.read_requests(PROJECT)
    assert list(df["request_id"]) == ["r0", "r1", "r2"] and list(df.columns) == list(logs.COLUMNS)
    assert str(df["ts"].dt.tz) == "UTC" and df["slices"][0] == {"category": "ok", "language": "en"}


def test_a_partial_line_glued_to_the_next_keeps_the_rest(db_url):
    now = datetime.now(UTC)
    write_log(PROJECT, traffic(2, stage="shadow", start=now), partial_tail='{"ts": "x", "input_')
    write_log(PROJECT, [request(9, stage="shadow", ts=now + timedelta(seconds=1))])
    assert list(logs.read_requests(PROJECT)["request_id"]) == ["r0", "r1"]  # r9 shares the broken line
    write_log(PROJECT, [request(10, stage="shadow", ts=now + timedelta(seconds=2))])
    assert list(logs.read_requests(PROJECT)["request_id"]) == ["r0", "r1", "r10"]


def test_no_log_is_an_empty_table(db_url):
    df = logs.read_requests(PROJECT)
    assert df.empty and list(df.columns) == list(logs.COLUMNS)
    assert logs.traffic_summary(df).overall["requests"] == 0


def test_since_skips_older_days_and_requests(db_url):
    now = datetime.now(UTC)
    old = [request(i, stage="shadow", ts=now - timedelta(days=3, seconds=i)) for i in range(3)]
    write_log(PROJECT, old + traffic(4, stage="5", start=now))
    assert len(logs.read_requests(PROJECT)) == 7
    assert len(logs.read_requests(PROJECT, since=now - timedelta(seconds=1))) == 4


def test_summary_figures_match_numpy(db_url):
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    records = traffic(120, stage="5", start=start, disagree_every=4)
    rng = np.random.default_rng(0)
    for i, r in enumerate(records):
        r["latency_ms"], r["student_confidence"] = float(rng.uniform(1, 30)), float(rng.uniform(0.2, 1.0))
        r["ts"] = (start + timedelta(minutes=i)).isoformat()
    write_log(PROJECT, records)
    s = logs.traffic_summary(logs.read_requests(PROJECT), "1h", threshold=0.5, must_escalate=["threat"])
    lat = np.array([r["latency_ms"] for r in records])
    conf = np.array([r["student_confidence"] for r in records])
    assert list(s.over_time["requests"]) == [60, 60]
    assert s.overall["p95_ms"] == pytest.approx(np.quantile(lat, 0.95))
    assert s.over_time["p50_ms"][0] == pytest.approx(np.median(lat[:60]))
    fallback = (conf < 0.5) | np.array([r["student_label"] == "threat" for r in records])
    assert s.overall["fallback_rate"] == pytest.approx(fallback.mean())
    assert s.overall["agreement"] == pytest.approx(1 - 30 / 120)
    ok = s.slices[(s.slices["column"] == "category") & (s.slices["value"] == "ok")].iloc[0]
    ok_rows = [r for r in records if r["slices"]["category"] == "ok"]
    assert ok["asked"] == len(ok_rows)
    assert ok["agreement"] == pytest.approx(np.mean([r["teacher_label"] == r["student_label"] for r in ok_rows]))
    assert s.confidence["requests"].sum() == 120
    assert json.dumps(s.overall)  # plain numbers, ready for a page or the CLI


def test_agreement_per_slice_over_time_matches_a_direct_count():
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    records = traffic(120, stage="5", disagree_every=4, start=start) + traffic(
        60, stage="5", start=start + timedelta(hours=1))
    df = pd.DataFrame(records)
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    table = logs.slice_agreement_over_time(df, freq="1h")
    first = table[(table["bucket"] == pd.Timestamp(start)) & (table["slice"] == "category=ok")].iloc[0]
    ok = [r for r in records[:120] if r["slices"]["category"] == "ok"]
    assert first["asked"] == len(ok)
    assert first["agreement"] == pytest.approx(sum(r["teacher_label"] == r["student_label"] for r in ok) / len(ok))
    second = table[table["bucket"] == pd.Timestamp(start + timedelta(hours=1))]
    assert (second["agreement"] == 1.0).all()
