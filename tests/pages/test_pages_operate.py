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


def test_the_operator_creates_lists_and_revokes_a_serving_token_beside_the_command(demo, session, shipped):
    from core.access import tokens
    from core.domain.hashing import token_hash
    from core.serving import howto

    at = app_as(demo["oscar"], page="pages/operate.py", project_id=shipped.id)
    codes = [c.value for c in at.code]
    assert howto.serve_command(shipped.name) in codes and any("/v1/classify" in c for c in codes)
    by_label(at.text_input, "New token for (the client that will use it)").input("ticket-router")
    by_label(at.button, "Create serving token").click().run()
    assert not at.exception and any("shown only now" in s.value for s in at.success)
    [row] = tokens.serve_tokens(session, project_id=shipped.id)
    secret = next(c.value for c in at.code if c.value.startswith(row.prefix))
    assert token_hash(secret) == row.token_hash  # the secret shown is the one the service accepts
    assert frame_with(at, "Prefix")["Name"].tolist() == ["ticket-router"]
    at.run()
    assert not any(c.value == secret for c in at.code)  # shown once: a rerun does not show it again
    by_label(at.selectbox, "Token to revoke").set_value(row.id)
    by_label(at.button, "Revoke").click().run()
    assert any("revoked" in s.value for s in at.success)
    session.expire_all()
    assert tokens.active_serve_hashes(session, project_id=shipped.id) == frozenset()


def test_someone_not_operator_sees_the_command_but_no_tokens(demo, session, shipped):
    from core.access import tokens
    from core.domain.errors import PermissionDenied

    tokens.create_serve_token(session, actor=demo["oscar"], project=shipped, name="router")
    at = app_as(demo["admin"], page="pages/operate.py", project_id=shipped.id)
    assert not any(b.label == "Create serving token" for b in at.button)
    assert any(c.value.startswith("stillroom serve") for c in at.code)
    with pytest.raises(PermissionDenied):  # the rule is core's, not the page's
        tokens.serve_tokens_for(session, actor=demo["dana"], project=shipped)
