"""Monitoring settings: validated as a whole, operators only, every change audited."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from core.domain.errors import InvalidInput, PermissionDenied
from core.rollout import config
from core.store.models import AuditEvent, MonitorConfig


def test_defaults_come_from_the_gate(session, gated):
    settings = config.get_config(session, project_id=gated.id)
    assert settings.stages == ["shadow", "5", "25", "100"] and (settings.psi_warn, settings.psi_alert) == (0.1, 0.2)
    assert config.agreement_floor(session, project_id=gated.id) == 0.95  # the gate's floor is relative
    assert config.must_escalate(session, project_id=gated.id) == ["threat"]  # the gate's severe classes


def test_change_is_stored_and_audited(session, demo, gated):
    settings = config.set_config(session, actor=demo["oscar"], project=gated,
                                 changes={"psi_warn": 0.05, "must_escalate": "legal, threat", "agreement_floor": 0.9})
    assert settings.must_escalate == ["legal", "threat"] and settings.psi_warn == 0.05
    assert config.agreement_floor(session, project_id=gated.id) == 0.9
    row = session.exec(select(MonitorConfig)).one()
    assert row.settings == {"psi_warn": 0.05, "must_escalate": ["legal", "threat"], "agreement_floor": 0.9}
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "monitor.config")).one()
    assert json.loads(event.payload)["changes"]["psi_warn"] == 0.05
    config.set_config(session, actor=demo["oscar"], project=gated, changes={"teacher_sample_rate": 0.1})
    assert config.get_config(session, project_id=gated.id).psi_warn == 0.05  # earlier changes are kept


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"psi_warn": 0.3}, "must be below psi_alert"),
    ({"teacher_sample_rate": 1.5}, r"Teacher sample rate must be at most 1 \(you gave 1.5\)"),
    ({"agreement_floor": -0.1}, "Agreement floor must be at least 0"),
    ({"stages": "5,25,100"}, "must start with shadow"),
    ({"stages": "shadow,25,5,100"}, "must increase and end at 100"),
    ({"stages": "shadow,5,50"}, "must increase and end at 100"),
    ({"stages": "shadow,abc,100"}, "not a percentage"),
    ({"psi_limit": 1}, "unknown monitoring setting"),
])
def test_invalid_settings_are_refused_and_nothing_is_written(session, demo, gated, changes, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        config.set_config(session, actor=demo["oscar"], project=gated, changes=changes)
    assert session.exec(select(MonitorConfig)).first() is None


def test_only_the_operator_changes_settings(session, demo, gated):
    with pytest.raises(PermissionDenied, match="Only an operator"):
        config.set_config(session, actor=demo["dana"], project=gated, changes={"psi_warn": 0.05})
