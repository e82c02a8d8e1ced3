"""The Evaluate page renders an evaluation of imported predictions of every kind: its criteria, where the
student's latency came from, what the file lacked or carried, and the kind's own figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from eval_helpers import easy_gate, ticket_rows
from pages_helpers import app_as, frame_with
from teacher_helpers import make_dataset

from core.access import projects
from core.data import holdout
from core.evaluation import imports
from core.gate import gate


def _project(session, demo, *, json_refs: bool = False, **gate_overrides):
    project = projects.get_project(session, "Support ticket routing")
    df = ticket_rows(80)
    if json_refs:
        df["reference"] = [json.dumps({"queue": q, "n": i}) for i, q in enumerate(df["queue"])]
    ds = make_dataset(session, actor=demo["dana"], project=project, df=df)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, fraction=0.5)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(**gate_overrides), reason="imports")
    return project, holdout.holdout_rows(session, project_id=project.id)


def _import(session, demo, project, df: pd.DataFrame, kind: str, **latency):
    return imports.import_predictions(session, actor=demo["dana"], project=project, kind=kind,
                                      data=df.to_csv(index=False).encode(), filename="theirs.csv", **latency)


def _page(demo, project):
    at = app_as(demo["dana"], page="pages/evaluate.py", project_id=project.id)
    assert not at.exception, at.exception
    assert all(e.value.startswith("Gate not met") for e in at.error), [e.value for e in at.error]
    return at, " ".join(c.value for c in at.caption).replace("\\", "")  # unescape the Markdown


def test_imported_labels_with_declared_latency(session, demo):
    project, held = _project(session, demo)
    df = pd.DataFrame({"id": held["id"], "student": held["queue"], "teacher": held["queue"]}).iloc[2:]
    _import(session, demo, project, df, "label", declared_latency={
        "p95_ms": 9.0, "declared_by": "Mia Vendor", "method": "k6 single requests", "where": "staging"})
    at, captions = _page(demo, project)
    assert "declared by Mia Vendor" in captions and "2 of 40 holdout rows had no prediction" in captions
    assert "Scored on holdout version 1" in captions
    criteria = frame_with(at, "detail")
    assert "does not accept declared latency" in criteria.set_index("name").loc["p95 latency", "detail"]


def test_imported_text(session, demo):
    project, held = _project(session, demo)
    df = pd.DataFrame({"id": held["id"], "student": held["reference"].fillna("").str.upper(), "judge_score": 0.7,
                       "vendor_note": "x"})
    _import(session, demo, project, df, "text")
    _, captions = _page(demo, project)
    assert "normalised match 1.000" in captions and "Mean judge_score: 0.700" in captions
    assert "Ignored columns (not read): vendor_note" in captions and "not measured" in captions


def test_imported_json(session, demo):
    project, held = _project(session, demo, json_refs=True, metric="field-accuracy",
                             field_floors=[{"field": "queue", "floor": 0.9}], slice_floors=[])
    refs = held["reference"].map(json.loads)
    df = pd.DataFrame({"id": held["id"], "student": [json.dumps({"queue": r["queue"], "n": 0}) for r in refs]})
    _import(session, demo, project, df, "json")
    at, captions = _page(demo, project)
    fields = frame_with(at, "Field").set_index("Field")
    assert fields.loc["queue", "Student accuracy"] == 1.0 and fields.loc["queue", "Floor"] == 0.9
    assert "field queue: accuracy" in frame_with(at, "detail")["name"].tolist()


@pytest.mark.parametrize("metric", ["ndcg@k", "pairwise-order"])
def test_imported_ranking(session, demo, metric):
    project, held = _project(session, demo, metric=metric, ranking_k=2, slice_floors=[])
    queries = [f"q{i // 4}" for i in range(len(held))]
    teacher = [float(i % 4) for i in range(len(held))]
    df = pd.DataFrame({"id": held["id"], "query_id": queries, "student": teacher[::-1], "teacher": teacher})
    _import(session, demo, project, df, "ranking")
    at, captions = _page(demo, project)
    assert "Ranking: NDCG@2" in captions and "pairwise order" in captions
    name = "quality floor: ndcg@2" if metric == "ndcg@k" else "quality floor: pairwise-order"
    assert name in frame_with(at, "detail")["name"].tolist()


def test_the_data_page_offers_the_holdout_for_download(session, demo):
    project, held = _project(session, demo)
    at = app_as(demo["dana"], page="pages/coverage_holdout.py", project_id=project.id)
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the holdout ids and inputs (csv)" in labels


def test_a_validator_approves_declared_latency_only_by_covering_it_on_the_review_page(session, demo):
    from pages_helpers import by_label
    from sqlmodel import select

    from core.store.models import SignOff

    project, held = _project(session, demo, declared_latency_acceptable=True)
    ev = _import(session, demo, project, pd.DataFrame({"id": held["id"], "student": held["queue"]}), "label",
                 declared_latency={"p95_ms": 9.0, "declared_by": "Mia Vendor", "method": "k6 runs", "where": "staging"})
    at = app_as(demo["val"], page="pages/review.py", project_id=project.id)
    assert any("declared by Mia Vendor" in w.value for w in at.warning)
    by_label(at.radio, "Your sign-off").set_value("approve")  # nothing is preselected
    by_label(at.button, f"Sign off evaluation #{ev.id}").click().run()
    assert any("declared by Mia Vendor" in e.value for e in at.error)
    by_label(at.checkbox, "My approval also covers the declared latency figures").check()
    by_label(at.button, f"Sign off evaluation #{ev.id}").click().run()
    [signed] = session.exec(select(SignOff)).all()
    assert signed.approve and signed.covers_declared_latency


def test_the_data_page_shows_what_the_last_iterate_asked_for_and_whether_it_is_met(session, demo):
    from core.decision import decision

    floors = [{"column": "queue", "value": "billing", "floor": 0.8, "min_n": 30}]
    project, held = _project(session, demo, slice_floors=floors)
    ev = _import(session, demo, project, pd.DataFrame({"id": held["id"], "student": held["queue"]}), "label")
    decision.decide(session, actor=demo["sam"], project=project, decision="iterate", evaluation_id=ev.id,
                    rationale="billing cannot be judged yet")
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=project.id)
    requests = [w.value for w in at.warning if w.value.startswith("Data request")]
    [request] = [r for r in requests if "queue=billing" in r]  # beside it, any failing severe class's ask
    assert "more holdout examples asked in round 1, 0 added" in request


def test_the_driver_extends_the_holdout_on_the_data_page(session, demo):
    from pages_helpers import by_label

    project, held = _project(session, demo)
    fresh = ticket_rows(80).assign(id=lambda d: "N" + d["id"], text=lambda d: "new case " + d["text"] + " " + d["id"])
    ds = make_dataset(session, actor=demo["dana"], project=project, df=fresh.head(6))
    at = app_as(demo["dana"], page="pages/coverage_holdout.py", project_id=project.id)
    by_label(at.selectbox, "Rows from").set_value(ds.id)
    by_label(at.text_input, "Why the holdout grows").input("round 2 asked for more billing rows")
    by_label(at.button, "Add as a new holdout version").click().run()
    assert not at.error, [e.value for e in at.error]
    version = holdout.current(session, project_id=project.id)
    assert version.version == 2 and version.n_rows == len(held) + 6
