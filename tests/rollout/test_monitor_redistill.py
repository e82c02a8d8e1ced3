"""Re-distillation: refused without drift at alert or falling agreement; otherwise a data request naming the
drifted slices, recorded and audited."""

from __future__ import annotations

import json

import pytest
from monitor_helpers import live_like, ship, traffic, write_log
from sqlmodel import select

from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied
from core.evaluation.runs import load_predictions
from core.rollout import drift, redistill
from core.store.models import AuditEvent, RedistillRequest


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def predictions(session, project):
    return load_predictions(session, drift.shipped_evaluation(session, project_id=project.id))


def test_refused_without_drift_or_falling_agreement(session, demo, shipped):
    write_log(shipped.id, live_like(predictions(session, shipped)))
    with pytest.raises(GovernanceViolation, match="no drift feature is at alert"):
        redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="routine")
    assert redistill.list_redistill(session, shipped.id) == []


def test_refused_to_non_operators_and_without_reason(session, demo, shipped):
    with pytest.raises(PermissionDenied):
        redistill.open_redistill(session, actor=demo["dana"], project=shipped, reason="drift")
    with pytest.raises(InvalidInput, match="needs a reason"):
        redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="")


def test_drift_at_alert_opens_a_request_for_the_drifted_slice(session, demo, shipped):
    write_log(shipped.id, live_like(predictions(session, shipped), n=400))
    row = redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="threats surged")
    assert row.reason == "threats surged" and row.drift["triggers"][0].startswith("slice:category PSI")
    wanted = {(s["column"], s["value"]): s for s in row.drift["slices"]}
    threat = wanted[("category", "threat")]
    assert threat["live_share"] == pytest.approx(440 / 800) and threat["training_share"] == pytest.approx(0.1)
    assert threat["examples_wanted"] == 220 - 40  # 55 % of the 400 training rows, less the 40 held
    assert redistill.list_redistill(session, shipped.id) == [row]
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "redistill.open")).one()
    assert json.loads(event.payload)["reason"] == "threats surged"


def test_falling_agreement_opens_a_request(session, demo, shipped):
    write_log(shipped.id, traffic(300, stage="shadow", disagree_every=3, input_chars=10))
    row = redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="agreement fell")
    assert any(t.startswith("sampled agreement 0.667") for t in row.drift["triggers"])
    assert session.exec(select(RedistillRequest)).one().drift["agreement"] == pytest.approx(2 / 3)


def test_the_request_reaches_the_drivers_queue_and_data_page(session, demo, shipped):
    from pages_helpers import app_as

    from core.decision import portfolio

    write_log(shipped.id, live_like(predictions(session, shipped), n=400))
    row = redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="threats surged")
    mine = {r.name: r for r in portfolio.portfolio(session, user=demo["dana"])}[shipped.name]
    assert f"Collect the data of re-distillation request #{row.id}" in mine.waiting_on_you
    assert "re-distillation requested" in mine.status
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=shipped.id)
    assert any(f"Re-distillation request #{row.id}" in w.value and "category=threat" in w.value
               for w in at.warning)


def test_the_data_pages_name_the_slices_a_request_asks_for(session, demo, shipped):
    write_log(shipped.id, live_like(predictions(session, shipped), n=400))
    row = redistill.open_redistill(session, actor=demo["oscar"], project=shipped, reason="threats surged")
    assert "category=threat (180 examples)" in redistill.wanted(row)
    row.drift = {"slices": [{"column": "queue", "value": "billing"}]}  # an older request without a count
    assert redistill.wanted(row) == "queue=billing (? examples)"
