"""Coverage audit: shares against production, the gate's slice minimums, sparse and missing slices,
and oversampling recorded as a new dataset version."""

from __future__ import annotations

import pytest
from data_helpers import QUEUES, import_rows, routing, snapshot, ticket_rows

from core.data import coverage, holdout
from core.domain.errors import InvalidInput, PermissionDenied
from core.store.artifacts import load_table
from core.store.models import Artifact, AuditEvent


def _rows(n: int, *, legal_compliance_every: int, offset: int = 0) -> list[dict]:
    rows = ticket_rows(n, seed=offset)
    for i, r in enumerate(rows):
        r["ticket_id"] = f"{offset}-{i}"
        r["queue"] = "legal_compliance" if i % legal_compliance_every == 0 else QUEUES[i % 3]
        r["tier"] = "enterprise" if i % 2 == 0 else "free"
    return rows


@pytest.fixture
def prompts(session, demo):
    # 400 rows: legal_compliance 1 in 10 (40 < the gate's 60), enterprise 200 (= the gate's 200), no language column.
    return import_rows(session, demo["dana"], _rows(400, legal_compliance_every=10),
                       slices=("queue", "channel", "tier"))


def test_coverage_checks_every_gate_slice_and_lists_missing_ones(session, demo, prompts):
    report = coverage.coverage(session, project=routing(session), dataset_id=prompts.id)
    floors = {(f.column, f.value): f for f in report.floors}
    assert floors["queue", "legal_compliance"].count == 40 and not floors["queue", "legal_compliance"].ok
    assert floors["tier", "enterprise"].count == 200 and floors["tier", "enterprise"].ok
    assert floors["language", "de"].count == 0
    assert any("no language column" in m for m in report.missing)
    assert [(p.column, p.value, p.copies) for p in report.plan] == [("queue", "legal_compliance", 20)]
    assert report.columns[0].js_distance is None


def test_coverage_against_production_gives_a_divergence_per_column(session, demo, prompts):
    prod_rows = _rows(300, legal_compliance_every=50, offset=1)
    prod_rows[0]["channel"] = "phone"
    prod = import_rows(session, demo["dana"], prod_rows, purpose="production", name="log",
                       slices=("queue", "channel", "tier"))
    report = coverage.coverage(session, project=routing(session), dataset_id=prompts.id, production_id=prod.id)
    by_col = {c.column: c for c in report.columns}
    assert 0 < by_col["queue"].js_distance < 1
    assert by_col["tier"].js_distance == pytest.approx(0, abs=0.01)
    assert any("channel=phone" in m and "no rows in the prompt set" in m for m in report.missing)
    frame = report.shares_frame()
    assert set(frame["source"]) == {"prompts", "production"}
    assert frame.groupby(["column", "source"])["share"].sum().round(6).eq(1).all()


def test_sparse_slices_are_listed(session, demo):
    ds = import_rows(session, demo["dana"], _rows(200, legal_compliance_every=100), slices=("queue",))
    report = coverage.coverage(session, project=routing(session), dataset_id=ds.id)
    assert [(s.column, s.value, s.count) for s in report.sparse] == [("queue", "legal_compliance", 2)]


def test_floor_counts_leave_out_the_holdout(session, demo, prompts):
    project = routing(session)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=prompts.id, fraction=0.25,
                        stratify_by=["queue"], seed=0)
    report = coverage.coverage(session, project=project, dataset_id=prompts.id)
    sec = next(f for f in report.floors if f.value == "legal_compliance")
    assert (sec.count, sec.in_holdout) == (30, 10)
    assert report.plan[0].copies == 30


def test_oversampling_reaches_the_minimum_and_is_recorded(session, demo, prompts):
    project = routing(session)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=prompts.id, n=100, seed=0)
    held = holdout.holdout_ids(session, project_id=project.id)
    child = coverage.apply_oversample(session, actor=demo["dana"], project=project, dataset_id=prompts.id, seed=1)
    assert (child.operation, child.parent_id) == ("oversample", prompts.id)
    df = load_table(session.get(Artifact, child.artifact_id))
    assert df["id"].is_unique
    copies = df[df["id"].str.contains("~os")]
    assert not copies["id"].str.split("~").str[0].isin(held).any()
    after = coverage.coverage(session, project=project, dataset_id=child.id)
    assert next(f for f in after.floors if f.value == "legal_compliance").ok and not after.plan
    event = session.exec(AuditEvent.__table__.select().order_by(AuditEvent.id.desc())).first()
    assert event.action == "dataset.oversample" and '"copies"' in event.payload


def test_oversampling_refusals_write_nothing(session, demo, prompts):
    project = routing(session)
    before = snapshot(session)
    with pytest.raises(PermissionDenied):
        coverage.apply_oversample(session, actor=demo["val"], project=project, dataset_id=prompts.id)
    with pytest.raises(InvalidInput, match="no rows outside the holdout"):
        coverage.apply_oversample(session, actor=demo["dana"], project=project, dataset_id=prompts.id,
                                  plan=[coverage.OversampleItem("queue", "fraud", 0, 10)])
    assert snapshot(session) == before
