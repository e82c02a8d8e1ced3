"""The success gate: locked before training, immutable, versioned with a reason."""

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from core.domain import gate_spec
from core.domain.errors import GateNotLocked, GovernanceViolation, InvalidInput, PermissionDenied
from core.gate import gate
from core.store import integrity
from core.store.models import AuditEvent, GateVersion


def _spec(**overrides):
    spec = gate.template("cost-pressure")
    spec["slice_floors"] = [{"column": "queue", "value": "security", "floor": 0.9, "min_n": 50}]
    spec.update(overrides)
    return spec


def _counts(session):
    return (session.exec(select(func.count()).select_from(GateVersion)).one(),
            session.exec(select(func.count()).select_from(AuditEvent)).one())


def test_sponsor_locks_a_gate_whose_hash_verifies(session, demo, qualified):
    g = gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec())
    assert g.version == 1 and len(g.content_hash) == 64
    assert integrity.verify_gate(g)
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "gate.lock")
                      .where(AuditEvent.project_id == qualified.id)).one()
    assert g.content_hash in ev.payload


@pytest.mark.parametrize("who", ["dana", "val", "oscar", "admin"])
def test_only_a_sponsor_of_the_project_locks(session, demo, qualified, who):
    before = _counts(session)
    with pytest.raises(PermissionDenied, match="Only a sponsor"):
        gate.lock(session, actor=demo[who], project=qualified, spec=_spec())
    assert _counts(session) == before


def test_no_gate_before_a_proceed_qualification(session, demo, moderation):
    with pytest.raises(GovernanceViolation, match="has not been qualified"):
        gate.lock(session, actor=demo["sam"], project=moderation, spec=_spec())


@pytest.mark.parametrize("override,field", [
    ({"quality_floor": {"kind": "absolute", "value": 1.5}}, "quality_floor.value"),
    ({"quality_floor": {"kind": "absolute", "value": -0.1}}, "quality_floor.value"),
    ({"quality_floor": {"kind": "guess", "value": 0.9}}, "quality_floor.kind"),
    ({"p95_latency_ms": -5}, "p95_latency_ms"),
    ({"cost_per_1k": -1}, "cost_per_1k"),
    ({"metric": "vibes"}, "metric"),
    ({"severe_errors": {"classes": ["refund", "refund"], "max_rate": 0.01}}, "severe_errors.classes"),
    ({"slice_floors": [{"column": "queue", "value": "billing", "floor": 2, "min_n": 10}]},
     "slice_floors[1].floor"),
    ({"slice_floors": [{"column": "", "value": "billing", "floor": 0.9, "min_n": 10}]},
     "slice_floors[1].column"),
    ({"slice_floors": [{"column": "queue", "value": "billing", "floor": 0.9, "min_n": 0}]},
     "slice_floors[1].min_n"),
])
def test_invalid_gate_names_the_field_and_writes_nothing(session, demo, qualified, override, field):
    before = _counts(session)
    with pytest.raises(InvalidInput) as err:
        gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec(**override))
    assert err.value.field == field, str(err.value)
    assert _counts(session) == before


def test_duplicate_slice_floors_are_refused(session, demo, qualified):
    twice = [{"column": "queue", "value": "security", "floor": 0.9, "min_n": 50}] * 2
    with pytest.raises(InvalidInput, match="Slice floor 2 repeats queue=security"):
        gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec(slice_floors=twice))


def test_changing_the_bar_needs_a_new_version_with_a_reason(session, demo, qualified):
    v1 = gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec())
    looser = _spec(quality_floor={"kind": "relative-to-teacher", "value": 0.95})
    with pytest.raises(InvalidInput, match="needs a reason"):
        gate.lock(session, actor=demo["sam"], project=qualified, spec=looser)
    with pytest.raises(InvalidInput, match="identical to version 1"):
        gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec(), reason="again")
    v2 = gate.lock(session, actor=demo["sam"], project=qualified, spec=looser, reason="Teacher is noisy")
    assert (v2.version, v2.supersedes_hash) == (2, v1.content_hash)
    assert gate.current(session, project_id=qualified.id).version == 2
    assert [g.version for g in gate.history(session, project_id=qualified.id)] == [1, 2]
    changes = gate.diff(v1, v2)
    assert [(c.path, c.old, c.new) for c in changes] == [("quality_floor.value", 0.98, 0.95)]


def test_diff_reports_added_and_removed_slice_floors():
    a = _spec()
    b = _spec(slice_floors=[{"column": "tier", "value": "gold", "floor": 0.9, "min_n": 30}])
    kinds = {(c.path, c.change) for c in gate.diff(a, b)}
    assert ("slice_floors[queue=security].floor", "removed") in kinds
    assert ("slice_floors[tier=gold].min_n", "added") in kinds


def test_tampered_gate_no_longer_verifies(session, engine, demo, qualified):
    g = gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec())
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER gate_version_no_update"))
        conn.execute(text("UPDATE gate_version SET spec_json = replace(spec_json, '0.98', '0.5') "
                          "WHERE id = :id"), {"id": g.id})
    session.expire_all()
    assert not integrity.verify_gate(session.get(GateVersion, g.id))


def test_work_needing_a_gate_is_refused_until_one_is_locked(session, demo, qualified):
    with pytest.raises(GateNotLocked, match="not locked: the sponsor must lock it before training"):
        gate.require_locked(session, project=qualified, doing="training")
    gate.lock(session, actor=demo["sam"], project=qualified, spec=_spec())
    assert gate.require_locked(session, project=qualified, doing="training").version == 1


def test_each_play_starts_from_its_own_template():
    cost, latency = gate.template("cost-pressure"), gate.template("latency", {"target_p95_ms": 20})
    spec = gate.template("specialization")
    assert cost["quality_floor"]["value"] > latency["quality_floor"]["value"]
    assert latency["p95_latency_ms"] == 20
    assert spec["quality_floor"]["kind"] == "relative-to-baseline"
    for play in ("cost-pressure", "latency", "stability", "specialization"):
        gate_spec.GateSpec.model_validate(gate.template(play))


def test_every_metric_has_a_label_and_a_form_field_its_title():
    assert all(gate_spec.metric_label(m) != m.value for m in gate_spec.Metric)
    assert gate_spec.metric_label("ndcg@k") == "NDCG@k (rankings)"
    assert gate_spec.field_title(gate_spec.GateSpec, "p95_latency_ms") == \
        gate_spec.GateSpec.model_fields["p95_latency_ms"].title


def test_slice_floor_rows_left_empty_are_ignored():
    rows = [{"column": "queue", "value": "billing", "floor": 0.8, "min_n": 30},
            {"column": "", "value": "", "floor": None, "min_n": None}, {"column": "", "value": "x"}]
    assert gate_spec.filled_rows(rows) == [rows[0], rows[2]]
