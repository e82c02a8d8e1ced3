"""Rollout and monitoring judge the union of every worker's traffic: three workers each log fewer requests than
an advance needs, together enough; the figures are those of all their requests as one log."""

from __future__ import annotations

import pytest
from log_writers import start
from monitor_helpers import ship, traffic, write_log

from core.rollout import logs, rollout
from core.serving.requestlog import RequestLog, log_dir


def test_advance_and_monitoring_count_every_workers_requests(session, demo, gated, tmp_path):
    shipped = ship(session, demo, gated)
    rollout.start(session, actor=demo["oscar"], project=shipped)
    records = traffic(240, stage="shadow", disagree_every=7)
    for i, r in enumerate(records):
        r["latency_ms"] = float(i % 31)
    streams = [records[w::3] for w in range(3)]  # 80 each: under the 200 an advance needs
    for w in start(lambda: RequestLog(log_dir(shipped.id)), streams, tmp_path):
        w.finish()
    check = rollout.check_advance(session, project_id=shipped.id)
    by_name = {c.name: c for c in check.criteria}
    assert check.n_requests == 240 and by_name["requests"].status == "PASS"
    disagreeing = sum(1 for i in range(240) if i % 7 == 0)
    assert by_name["student-teacher agreement"].value == pytest.approx(1 - disagreeing / 240)

    union = logs.traffic_summary(logs.read_requests(shipped.id), threshold=0.5, must_escalate=["threat"])
    write_log(shipped.id + 1000, records)  # the same requests as one single-process log, for comparison
    whole = logs.traffic_summary(logs.read_requests(shipped.id + 1000), threshold=0.5, must_escalate=["threat"])
    assert union.overall == whole.overall and union.overall["requests"] == 240
    assert union.slices.equals(whole.slices)
