"""The operator's page: start the rollout in shadow, see the advance criteria, traffic, drift, roll back."""

from __future__ import annotations

import json

import pytest
from monitor_helpers import ship, traffic, write_log
from pages_helpers import app_as, by_label, frame_with

from core.rollout import rollout


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def test_the_operator_starts_in_shadow_and_sees_the_advance_criteria(demo, session, shipped):
    at = app_as(demo["oscar"], page="pages/operate.py", project_id=shipped.id)
    assert {m.label: m.value for m in at.metric}["Stage"] == "off"
    by_label(at.button, "Apply").click().run()
    assert any("now at stage shadow" in s.value for s in at.success)
    assert rollout.current_stage(session, project_id=shipped.id) == "shadow"
    criteria = frame_with(at, "status")
    assert "WAITING" in set(criteria["status"]) and "FAIL" not in set(criteria["status"])  # no traffic yet
    assert by_label(at.radio, "Action").options == ["Advance one stage", "Roll back"]  # no second start


def test_traffic_drift_and_rollback(demo, session, shipped):
    rollout.start(session, actor=demo["oscar"], project=shipped, reason="go")
    write_log(shipped.id, traffic(300, stage="shadow", disagree_every=10))
    at = app_as(demo["oscar"], page="pages/operate.py", project_id=shipped.id)
    assert {m.label: m.value for m in at.metric}["Requests"] == "300"
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert {"Student confidence", "Sampled agreement per slice, over time"} <= set(titles)
    assert "Jensen-Shannon" in frame_with(at, "Feature").columns
    by_label(at.radio, "Action").set_value("rollback")
    by_label(at.button, "Apply").click().run()
    assert "needs a reason" in at.error[0].value
    by_label(at.text_input, "Reason (required to roll back)").input("agreement dipped overnight")
    by_label(at.button, "Apply").click().run()
    assert rollout.current_stage(session, project_id=shipped.id) == "off"


def test_someone_else_sees_the_rollout_but_cannot_act(demo, shipped):
    at = app_as(demo["admin"], page="pages/operate.py", project_id=shipped.id)
    assert "Only an operator" in at.info[0].value
    assert by_label(at.button, "Apply").disabled
