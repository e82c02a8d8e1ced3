"""The sponsor's pages: qualify the trigger, then define, lock and version the gate."""

from __future__ import annotations

import pytest
from pages_helpers import app_as, by_label, frame_with, texts
from sqlmodel import func, select

from conftest import good_qualification
from core.access import projects
from core.gate import gate
from core.qualify import qualification
from core.store import integrity
from core.store.models import AuditEvent, GateVersion, Qualification


@pytest.fixture
def moderation(session, demo):
    return projects.get_project(session, "Comment moderation")


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


def _count(session, model) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_qualify_shows_a_live_recommendation_and_records_the_verdict(demo, session, moderation):
    at = app_as(demo["sam"], page="pages/qualify.py", project_id=moderation.id)
    by_label(at.text_area, "Evidence").input("Moderation calls cost $9k a month at 3M comments.").run()
    assert at.warning[0].value.startswith("**fix-first**")  # terms unknown: find out first
    by_label(at.radio, "Do its terms permit training on its outputs?").set_value("yes").run()
    assert at.success[0].value.startswith("**proceed**")
    assert {m.label for m in at.metric} >= {"Payback", "Saving, per month"}
    assert at.get("plotly_chart")
    by_label(at.button, "Record verdict").click().run()
    q = qualification.latest(session, project_id=moderation.id)
    assert (q.version, q.verdict, q.recommendation) == (1, "proceed", "proceed")
    assert at.success[0].value == "Verdict recorded as version 1: proceed."  # shown after the page reloads
    assert "Recorded verdict (version 1): proceed" in at.markdown[0].value


def test_qualify_names_the_field_to_fix_and_records_nothing(demo, session, moderation):
    before = (_count(session, Qualification), _count(session, AuditEvent))
    at = app_as(demo["sam"], page="pages/qualify.py", project_id=moderation.id)
    by_label(at.text_area, "Evidence").input("too short").run()
    assert "answers to see a recommendation: Evidence must be at least 10 characters" in at.warning[0].value
    assert not [b for b in at.button if b.label == "Record verdict"]
    by_label(at.text_area, "Evidence").input("A real bill of $9k a month.").run()
    by_label(at.number_input, "Current p95 latency (ms)").set_value(0.0).run()
    assert "Current p95 latency (ms) must be more than 0" in at.warning[0].value
    assert (_count(session, Qualification), _count(session, AuditEvent)) == before


def test_overruling_the_recommendation_needs_a_rationale(demo, session, moderation):
    at = app_as(demo["sam"], page="pages/qualify.py", project_id=moderation.id)
    by_label(at.text_area, "Evidence").input("Moderation calls cost $9k a month at 3M comments.").run()
    by_label(at.radio, "Your verdict").set_value("proceed")
    by_label(at.button, "Record verdict").click().run()
    assert "give a rationale" in at.error[0].value
    assert qualification.latest(session, project_id=moderation.id) is None


def test_a_non_sponsor_reads_the_qualification_but_gets_no_form(demo, routing):
    at = app_as(demo["admin"], page="pages/qualify.py", project_id=routing.id)
    assert "Only a sponsor" in at.info[0].value
    assert not at.text_area


def _qualified(session, demo, project):
    qualification.record(session, actor=demo["sam"], project=project, inputs=good_qualification(),
                         verdict="proceed")


def test_lock_a_gate_from_the_template_with_a_slice_floor(demo, session, moderation):
    _qualified(session, demo, moderation)
    at = app_as(demo["sam"], page="pages/gate.py", project_id=moderation.id)
    assert "No gate is locked yet" in at.info[0].value
    _fill_floors(at, moderation, [{"column": "category", "value": "self-harm", "floor": 0.9, "min_n": 50}])
    by_label(at.text_input, "Severe classes (comma-separated)").input("self-harm, threats")
    by_label(at.button, "Lock gate v1").click().run()
    assert not at.error, texts(at.error)
    g = gate.current(session, project_id=moderation.id)
    spec = gate.spec_of(g)
    assert g.version == 1 and integrity.verify_gate(g)
    assert [f.model_dump() for f in spec.slice_floors] == [
        {"column": "category", "value": "self-harm", "floor": 0.9, "min_n": 50}]
    assert spec.severe_errors.classes == ["self-harm", "threats"]
    assert at.success[0].value.startswith("Gate v1 locked;")
    assert "Gate v1 locked" in at.success[1].value and "content hash verifies" in at.success[1].value


def _fill_floors(at, project, rows: list[dict]) -> None:
    """Type the rows into the gate form's slice-floor inputs (one text or number input per cell)."""
    for i, row in enumerate(rows):
        for field, value in row.items():
            widget = at.text_input(key=f"sf_{field}_{project.id}_0_{i}") if field in ("column", "value") else \
                at.number_input(key=f"sf_{field}_{project.id}_0_{i}")
            if value is not None:
                widget.set_value(value)


@pytest.mark.parametrize(("rows", "says"), [
    ([{"column": "", "value": "spam", "floor": 0.9, "min_n": 10}], "Slice floor 1, column must not be blank."),
    ([{"column": "category", "value": "spam", "floor": 0.9, "min_n": 10},
      {"column": "category", "value": "spam", "floor": 0.8, "min_n": 10}], "Slice floor 2 repeats category=spam"),
    ([{"column": "category", "value": "spam", "floor": 0.9, "min_n": None}],
     "Slice floor 1, fewest holdout examples must be filled in."),
])
def test_a_bad_slice_floor_is_named_and_nothing_is_locked(demo, session, moderation, rows, says):
    _qualified(session, demo, moderation)
    events = _count(session, AuditEvent)
    at = app_as(demo["sam"], page="pages/gate.py", project_id=moderation.id)
    _fill_floors(at, moderation, rows)
    by_label(at.button, "Lock gate v1").click().run()
    assert says in at.error[0].value and "slice_floors[" not in at.error[0].value
    assert gate.current(session, project_id=moderation.id) is None
    assert _count(session, AuditEvent) == events


def test_locking_before_a_proceed_qualification_is_refused(demo, session, moderation):
    at = app_as(demo["sam"], page="pages/gate.py", project_id=moderation.id)
    by_label(at.button, "Lock gate v1").click().run()
    assert "record a 'proceed' qualification before locking" in at.error[0].value
    assert _count(session, GateVersion) == 1  # the routing demo's gate only


def test_the_locked_gate_shows_its_verified_hash_and_a_new_version_needs_a_reason(demo, session, routing):
    at = app_as(demo["sam"], page="pages/gate.py", project_id=routing.id)
    assert "Gate v1 locked" in at.success[0].value and "content hash verifies" in at.success[0].value
    by_label(at.number_input, "Floor value").set_value(0.99)
    by_label(at.button, "Lock gate v2").click().run()
    assert "needs a reason" in at.error[0].value
    by_label(at.text_input, "Reason for this version (required)").input("Finance asked for a stricter bar.")
    by_label(at.button, "Lock gate v2").click().run()
    assert gate.current(session, project_id=routing.id).version == 2


def test_history_and_diff_between_versions(demo, session, routing):
    spec = gate.spec_of(gate.current(session, project_id=routing.id))
    spec.quality_floor.value = 0.99
    gate.lock(session, actor=demo["sam"], project=routing, spec=spec, reason="Stricter after the review.")
    at = app_as(demo["sam"], page="pages/gate.py", project_id=routing.id)
    assert "Stricter after the review." in frame_with(at, "Reason")["Reason"].tolist()
    diff = frame_with(at, "Criterion")
    row = diff.set_index("Criterion").loc["quality_floor.value"]
    assert (row["Change"], row["v1"], row["v2"]) == ("changed", "0.98", "0.99")


def test_a_non_sponsor_sees_the_gate_but_cannot_lock(demo, routing):
    at = app_as(demo["admin"], page="pages/gate.py", project_id=routing.id)
    assert "Only a sponsor" in at.info[-1].value
    assert not [b for b in at.button if b.label.startswith("Lock gate")]
