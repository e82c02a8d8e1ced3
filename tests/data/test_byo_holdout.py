"""The holdout a student trained elsewhere is judged on: never drawn from oversampled copies, capped the same way
however its size is given, split by query for rankings, and exported (ids and inputs only, formula-safe)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from data_helpers import import_rows, routing, ticket_rows

from core.data import coverage, datasets, holdout
from core.domain.errors import InvalidInput


@pytest.fixture
def tickets(session, demo):
    return import_rows(session, demo["dana"], ticket_rows(200))


def test_the_holdout_is_never_drawn_from_oversampled_copies_or_their_originals(session, demo, tickets):
    from eval_helpers import easy_gate

    from core.gate import gate

    project = routing(session)
    gate.lock(session, actor=demo["sam"], project=project, reason="floors", spec=easy_gate(
        slice_floors=[{"column": "queue", "value": "legal_compliance", "floor": 0.8, "min_n": 40}]))
    grown = coverage.apply_oversample(session, actor=demo["dana"], project=project, dataset_id=tickets.id)
    h = holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=grown.id, fraction=0.5,
                            stratify_by=["queue"])
    held = holdout.holdout_rows(session, project_id=project.id)
    assert not held["id"].str.contains(datasets.COPY_MARK, regex=False).any()
    assert not held["queue"].eq("legal_compliance").any()  # every rare row was copied: none may be held out
    assert h.n_rows == len(held) == round(0.5 * (200 - 10))


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"n": 101}, "at most 50% of them, so pick between 1 and 100 rows"),
    ({"fraction": 0.6}, "outside 0 to 0.5"),
])
def test_n_obeys_the_same_cap_as_fraction(session, demo, tickets, kwargs, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=tickets.id, **kwargs)


def test_a_ranking_holdout_is_split_by_query(session, demo):
    rows = ticket_rows(200)
    for i, r in enumerate(rows):
        r["query_id"] = f"q{i // 5}"
    ds = import_rows(session, demo["dana"], rows, slices=("queue", "query_id"))
    holdout.fix_holdout(session, actor=demo["dana"], project=routing(session), dataset_id=ds.id, fraction=0.25,
                        group_by="query_id")
    held = holdout.holdout_rows(session, project_id=routing(session).id)
    sizes = held.groupby("query_id").size()
    assert len(sizes) == 10 and (sizes == 5).all()  # 10 of 40 queries, each with all five of its items


def test_the_export_has_ids_and_inputs_only_and_is_formula_safe(session, demo):
    rows = ticket_rows(40)
    for r in rows:
        r["body"] = "=HYPERLINK(\"http://x\") " + r["body"]
    ds = import_rows(session, demo["dana"], rows)
    project = routing(session)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, n=20, seed=1)
    held = holdout.holdout_rows(session, project_id=project.id)
    csv = pd.read_csv(io.BytesIO(holdout.export_holdout(session, project=project, fmt="csv")), dtype=str)
    assert list(csv.columns) == ["id", "text"] and sorted(csv["id"]) == sorted(held["id"])
    assert csv["text"].str.startswith("'=HYPERLINK").all()
    lines = holdout.export_holdout(session, project=project, fmt="jsonl").decode().splitlines()
    assert {json.loads(x)["id"] for x in lines} == set(held["id"])
    parquet = pd.read_parquet(io.BytesIO(holdout.export_holdout(session, project=project, fmt="parquet")))
    assert len(parquet) == len(held) and "reference" not in parquet.columns
