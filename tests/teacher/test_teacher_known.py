"""Extraction: a teacher's JSON outputs that contradict known records are dropped, counted per field, under the
gate's field rules."""

from __future__ import annotations

import json

import pandas as pd

from core.teacher.known import check_known


def test_outputs_contradicting_known_records_are_dropped_and_counted_per_field():
    outputs = pd.DataFrame({"id": ["a", "b", "c", "d"], "output": [
        json.dumps({"total": "1,200.50", "country": "de"}),
        json.dumps({"total": "99", "country": "FR"}),
        json.dumps({"total": "5", "country": "IT"}),
        json.dumps({"total": "7"})]})
    known = pd.DataFrame({"id": ["a", "b", "c"], "total": ["1200.5", "100", None], "country": ["DE", "FR", "ES"]})
    done = check_known(outputs, known, rules={"total": ["number"], "country": ["case"]})
    assert done.kept["id"].tolist() == ["a", "d"]  # d has no known record: kept, not checked
    assert done.counts == {"total": 4, "checked": 3, "kept": 2, "dropped": 2, "by_field": {"total": 1, "country": 1}}
    assert done.dropped.set_index("id").loc["b", "reasons"] == "total: '99' is not the known '100'"
    assert "3 of 4 teacher outputs had a known record; 2 contradicted it" in done.sentence()
    strict = check_known(outputs, known, rules={})
    assert strict.counts["by_field"] == {"total": 2, "country": 2}  # without rules "1,200.50" and "de" differ
