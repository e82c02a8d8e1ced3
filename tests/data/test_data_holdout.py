"""The holdout: fixed once, stratified by slice, fingerprinted; overlapping training rows refused."""

from __future__ import annotations

import pandas as pd
import pytest
from data_helpers import import_rows, routing, snapshot, ticket_rows

from core.data import holdout
from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied
from core.store.artifacts import load_table, store_table
from core.store.models import Artifact, AuditEvent, Holdout, TeacherRun
from core.training import pool


@pytest.fixture
def tickets(session, demo):
    return import_rows(session, demo["dana"], ticket_rows(400))


def test_holdout_is_stratified_fingerprinted_and_audited(session, demo, tickets):
    h = holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=tickets.id,
                            fraction=0.2, stratify_by=["queue", "channel"], seed=7)
    rows = load_table(session.get(Artifact, h.artifact_id))
    assert h.n_rows == len(rows) == 80
    full = load_table(session.get(Artifact, tickets.artifact_id))
    expected = (full.groupby(["queue", "channel"]).size() * 0.2).round()
    got = rows.groupby(["queue", "channel"]).size()
    assert (got - expected).abs().max() <= 1
    assert h.fingerprint == holdout.fingerprint(rows) == holdout.fingerprint(rows.sample(frac=1, random_state=1))
    assert holdout.holdout_ids(session, project_id=routing(session).id) == set(rows["id"])
    event = session.exec(AuditEvent.__table__.select().order_by(AuditEvent.id.desc())).first()
    assert event.action == "holdout.fix" and h.fingerprint in event.payload


def test_same_seed_draws_the_same_rows(tickets, session):
    df = load_table(session.get(Artifact, tickets.artifact_id))
    a = holdout.stratified_mask(df, by=["queue"], target=50, seed=3)
    b = holdout.stratified_mask(df, by=["queue"], target=50, seed=3)
    assert a.sum() == 50 and (a == b).all()
    assert not (a == holdout.stratified_mask(df, by=["queue"], target=50, seed=4)).all()


def test_second_holdout_is_refused(session, demo, tickets):
    holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=tickets.id, n=40)
    before = snapshot(session)
    with pytest.raises(GovernanceViolation, match="already has its holdout .* fixed once"):
        holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=tickets.id, n=40)
    assert snapshot(session) == before


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"fraction": 0.2, "n": 10}, "not both or neither"),
    ({}, "not both or neither"),
    ({"fraction": 0.9}, "outside 0 to 0.5"),
    ({"n": 400}, "does not fit a dataset of 400 rows"),
    ({"fraction": 0.2, "stratify_by": ["tier"]}, "no slice column 'tier'"),
])
def test_bad_holdout_requests_are_refused(session, demo, tickets, kwargs, fragment):
    before = snapshot(session)
    with pytest.raises(InvalidInput, match=fragment):
        holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=tickets.id, **kwargs)
    assert snapshot(session) == before


def test_only_the_driver_fixes_the_holdout(session, demo, tickets):
    with pytest.raises(PermissionDenied):
        holdout.fix_holdout(session, actor=demo["oscar"], project=routing(session), dataset_id=tickets.id, n=10)
    assert session.exec(Holdout.__table__.select()).first() is None


def test_holdout_ids_is_empty_without_a_holdout(session, demo):
    assert holdout.holdout_ids(session, project_id=routing(session).id) == set()
    holdout.check_no_overlap(session, project=routing(session), df=pd.DataFrame({"id": ["a"], "text": ["x"]}))


def test_exact_and_near_overlap_is_refused(session, demo, tickets):
    project = routing(session)
    h = holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=tickets.id, n=40, seed=1)
    held = load_table(session.get(Artifact, h.artifact_id))
    full = load_table(session.get(Artifact, tickets.artifact_id))
    rest = full[~full["id"].isin(set(held["id"]))].reset_index(drop=True)
    holdout.check_no_overlap(session, project=project, df=rest)  # disjoint: accepted
    holdout.check_no_overlap(session, project=project, df=full)  # holdout ids themselves are left out

    exact = pd.concat([rest, pd.DataFrame({"id": ["X1"], "text": ["  " + held["text"][0].upper()]})])
    with pytest.raises(GovernanceViolation, match="1 of .* rows overlap the holdout \\(1 exact, 0 near"):
        holdout.check_no_overlap(session, project=project, df=exact)

    near = pd.concat([rest, pd.DataFrame({"id": ["N1"], "text": [held["text"][1] + " thanks"]})])
    report = holdout.leakage(session, project=project, df=near, threshold=0.6)
    assert (report.exact, report.near) == (0, 1)
    assert report.examples[0].holdout_id == held["id"][1] and report.examples[0].row_id == "N1"


def test_dataset_leakage_reports_counts_for_the_page(session, demo):
    rows = ticket_rows(100)
    rows.append({**rows[0], "ticket_id": "COPY", "body": rows[0]["body"]})
    ds = import_rows(session, demo["dana"], rows)
    project = routing(session)
    h = holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, n=30, seed=2)
    held_ids = holdout.holdout_ids(session, project_id=project.id)
    report = holdout.dataset_leakage(session, project=project, dataset_id=ds.id)
    copy_in = ("T00000" in held_ids) != ("COPY" in held_ids)
    assert report.exact == (1 if copy_in else 0)
    assert report.checked == 101 - h.n_rows


def _teacher_run(session, project, dataset, actor):
    df = load_table(session.get(Artifact, dataset.artifact_id))
    outputs = pd.DataFrame({"id": df["id"], "label": df["reference"], "confidence": 0.9, "probs": None,
                            "raw": df["reference"]})
    art = store_table(session, project=project, actor=actor, df=outputs, kind="teacher-outputs")
    run = TeacherRun(project_id=project.id, dataset_id=dataset.id, adapter="file", artifact_id=art.id,
                     n_rows=len(df), labels=["billing", "refund", "shipping", "legal_compliance"], created_by=actor.id)
    session.add(run)
    session.commit()
    return run


def test_training_pool_leaves_out_the_holdout_and_refuses_overlap(session, demo):
    project = routing(session)
    rows = ticket_rows(120)
    ds = import_rows(session, demo["dana"], rows)
    h = holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, n=20, seed=0)
    data, stats = pool.training_rows(session, project=project,
                                     teacher_run=_teacher_run(session, project, ds, demo["dana"]))
    assert stats.holdout_excluded == h.n_rows and stats.rows == 100
    held = load_table(session.get(Artifact, h.artifact_id))
    leaky = import_rows(session, demo["dana"], [*rows, {**rows[0], "ticket_id": "LEAK",
                                                        "body": held["text"][0] + " again"}], name="leaky")
    with pytest.raises(GovernanceViolation, match="overlap the holdout"):
        pool.training_rows(session, project=project, teacher_run=_teacher_run(session, project, leaky, demo["dana"]))


def test_drop_overlap_stores_a_version_without_the_rows_that_match_the_holdout(session, demo):
    from data_helpers import import_rows, routing, ticket_rows

    from core.domain.errors import InvalidInput, PermissionDenied

    project = routing(session)
    rows = ticket_rows(60)
    rows += [{**r, "ticket_id": r["ticket_id"] + "-again", "body": r["body"].upper()} for r in rows]
    ds = import_rows(session, demo["dana"], rows)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, fraction=0.3, seed=2)
    before = holdout.dataset_leakage(session, project=project, dataset_id=ds.id)
    assert before.leaked > 0 and len(before.leaked_ids) == before.leaked
    with pytest.raises(PermissionDenied):
        holdout.drop_overlap(session, actor=demo["val"], project=project, dataset_id=ds.id)
    child, report = holdout.drop_overlap(session, actor=demo["dana"], project=project, dataset_id=ds.id)
    assert (child.parent_id, child.operation, child.n_rows) == (ds.id, "drop-overlap", 120 - report.leaked)
    assert holdout.dataset_leakage(session, project=project, dataset_id=child.id).leaked == 0
    with pytest.raises(InvalidInput, match="does not overlap the holdout"):
        holdout.drop_overlap(session, actor=demo["dana"], project=project, dataset_id=child.id)


# --------------------------------------------------------------------------- issue 12: an imported test split

TEST_MAPPING = {"id": "ticket_id", "text": "body", "slices": ["queue"], "reference": "label"}


def split_rows(n: int = 40, *, start: int = 5000) -> list[dict]:
    return [{**r, "ticket_id": f"S{i:05d}", "body": f"test question {i} about " + r["body"].split(" ", 2)[2]}
            for i, r in enumerate(ticket_rows(n, seed=9), start=start)]


def test_an_imported_test_split_becomes_the_fingerprinted_holdout_and_is_never_trained_on(session, demo, tickets):
    from data_helpers import csv_bytes

    rows = split_rows()
    done = holdout.import_holdout(session, actor=demo["dana"], project=routing(session), mapping=TEST_MAPPING,
                                  data=csv_bytes(rows), filename="test.csv")
    held = holdout.holdout_rows(session, project_id=routing(session).id)
    assert done.holdout.n_rows == len(held) == 40 and done.dataset.purpose == "holdout"
    assert done.holdout.fingerprint == holdout.fingerprint(held)
    assert set(held["id"]) == {r["ticket_id"] for r in rows} and held["reference"].notna().all()
    assert done.leakage.leaked == 0 and "No overlap" in done.sentence()
    event = session.exec(AuditEvent.__table__.select().order_by(AuditEvent.id.desc())).first()
    assert event.action == "holdout.import" and done.holdout.fingerprint in event.payload
    with pytest.raises(GovernanceViolation, match="already has its holdout"):
        holdout.import_holdout(session, actor=demo["dana"], project=routing(session), mapping=TEST_MAPPING,
                               data=csv_bytes(rows), filename="test.csv")


def test_test_rows_equal_to_training_rows_are_reported_and_training_refuses_them(session, demo, tickets):
    from data_helpers import csv_bytes

    train = load_table(session.get(Artifact, tickets.artifact_id))
    rows = split_rows(10)
    rows[0]["body"] = train["text"].iloc[3]  # the same question in both splits
    done = holdout.import_holdout(session, actor=demo["dana"], project=routing(session), mapping=TEST_MAPPING,
                                  data=csv_bytes(rows), filename="test.csv")
    assert done.leakage.exact == 1 and "drop-overlap" in done.sentence()
    with pytest.raises(GovernanceViolation, match="overlap the holdout"):
        holdout.check_no_overlap(session, project=routing(session), df=train)


def test_a_test_split_without_answers_or_with_training_ids_is_refused_and_nothing_is_stored(session, demo, tickets):
    from data_helpers import csv_bytes

    before = snapshot(session)
    no_answer = split_rows(5)
    no_answer[2]["label"] = None
    with pytest.raises(InvalidInput, match="column label: 1 rows have no reference"):
        holdout.import_holdout(session, actor=demo["dana"], project=routing(session), mapping=TEST_MAPPING,
                               data=csv_bytes(no_answer), filename="test.csv")
    clash = split_rows(5)
    clash[0]["ticket_id"] = "T00003"  # an id of a training row
    with pytest.raises(InvalidInput, match="ids of the test split are also ids of training rows"):
        holdout.import_holdout(session, actor=demo["dana"], project=routing(session), mapping=TEST_MAPPING,
                               data=csv_bytes(clash), filename="test.csv")
    with pytest.raises(PermissionDenied):
        holdout.import_holdout(session, actor=demo["val"], project=routing(session), mapping=TEST_MAPPING,
                               data=csv_bytes(split_rows(5)), filename="test.csv")
    assert snapshot(session) == before


def test_the_cli_imports_a_test_split_as_the_holdout(session, demo, tickets, tmp_path):
    from click.testing import CliRunner
    from data_helpers import csv_bytes, write

    from core.cli import cli

    path = write(tmp_path, "test.csv", csv_bytes(split_rows(12)))
    result = CliRunner().invoke(cli, ["--as", "dana", "data", "holdout-import", routing(session).name, str(path),
                                      "--id", "ticket_id", "--text", "body", "--reference", "label",
                                      "--slice", "queue"])
    assert result.exit_code == 0, result.output
    assert "Holdout fixed from the imported test split: 12 rows" in result.stdout
    assert holdout.get_holdout(session, project_id=routing(session).id).n_rows == 12


def test_the_data_page_imports_a_test_split_as_the_holdout(session, demo, tickets):
    from data_helpers import csv_bytes
    from pages_helpers import app_as, by_label

    at = app_as(demo["dana"], page="pages/coverage_holdout.py", project_id=routing(session).id)
    uploader = next(u for u in at.get("file_uploader") if "Test split" in u.proto.label)
    uploader.upload("test.csv", csv_bytes(split_rows(15)), "text/csv").run()
    by_label(at.selectbox, "Id column").set_value("ticket_id")
    by_label(at.selectbox, "Text column").set_value("body")
    by_label(at.selectbox, "Answer (reference) column").set_value("label")
    by_label(at.button, "Import as the holdout").click().run()
    assert not at.error, [e.value for e in at.error]
    assert holdout.get_holdout(session, project_id=routing(session).id).n_rows == 15
