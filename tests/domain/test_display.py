"""Time axes follow the span of the data they draw."""

from __future__ import annotations

import pandas as pd
import pytest

from core.domain import display


@pytest.mark.parametrize(("span", "freq"), [
    (pd.Timedelta(milliseconds=480), "1s"),  # 480 requests in half a second: one bucket a second, not sub-ms ticks
    (pd.Timedelta(minutes=1), "1s"), (pd.Timedelta(minutes=10), "15s"), (pd.Timedelta(hours=3), "5min"),
    (pd.Timedelta(days=2), "1h"), (pd.Timedelta(days=30), "1D"), (pd.Timedelta(days=3000), "7D"),
])
def test_time_buckets_follow_the_span(span, freq):
    start = pd.Timestamp("2026-05-01T09:00:00Z")
    got = display.time_bucket(start, start + span)
    assert got == freq and span / pd.Timedelta(got) <= 60 or got == "7D"
