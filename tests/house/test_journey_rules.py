"""The small rules behind the browser journey's fixes: how tables read, ids to download, the stored mapping in
words, form errors as sentences about labelled fields, and a class the student never predicts."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from data_helpers import csv_bytes, routing, ticket_rows

from core.data import datasets, importer
from core.domain.display import number, tidy
from core.domain.errors import InvalidInput
from core.domain.gate_spec import GateSpec, floor_sentence
from core.domain.validation import parse
from core.gate.gate import template
from core.store.models import TrainingRun
from core.training.runs import never_predicted


def test_tables_show_a_dash_for_missing_values_and_no_float_noise():
    df = tidy([{"value": 0.1 + 0.2, "threshold": None, "status": "PASS"},
               {"value": 0.9, "threshold": 0.95, "status": "FAIL"}])
    assert df["value"].tolist() == [0.3, 0.9]  # still numbers: the column has no gaps
    assert df["threshold"].tolist() == ["—", "0.95"]
    assert "None" not in df.to_string() and "nan" not in df.to_string()
    assert number(None, unit="ms", missing="not measured") == "not measured"
    assert (number(1234567), number(2.0), number(0.000012345), number(12.5, unit="ms")) == \
        ("1,234,567", "2", "1.23e-05", "12.5 ms")


def test_a_dataset_versions_ids_download_as_a_formula_safe_csv(session, demo):
    rows = ticket_rows(5)
    rows[1]["ticket_id"] = "=HYPERLINK(1)"
    ds = importer.import_dataset(session, actor=demo["dana"], project=routing(session),
                                 mapping={"id": "ticket_id", "text": "body"}, data=csv_bytes(rows), filename="t.csv")
    back = pd.read_csv(io.BytesIO(datasets.ids_csv(session, project=routing(session), dataset_id=ds.id)),
                       dtype=str)
    expected = [r["ticket_id"] for r in rows]
    expected[1] = "'=HYPERLINK(1)"  # a spreadsheet shows it as text instead of running it
    assert back.columns.tolist() == ["id"] and back["id"].tolist() == expected
    assert datasets.csv_safe("-2+3") == "'-2+3" and datasets.csv_safe("T001") == "T001"


def test_the_stored_mapping_reads_as_a_sentence():
    said = datasets.describe_mapping({"id": "ticket_id", "text": "body", "slices": ["channel", "tier"],
                                      "reference": "queue", "timestamp": None, "labels": None})
    assert said == "id from 'ticket_id'; text from 'body'; slices 'channel', 'tier'; reference from 'queue'"
    assert "no slice columns" in datasets.describe_mapping({"id": "id", "text": "t", "slices": []})


@pytest.mark.parametrize(("change", "says"), [
    ({"slice_floors": [{"column": "queue", "value": "legal", "floor": 0.9, "min_n": "ten"}]},
     "Slice floor 1, fewest holdout examples must be a whole number (you gave 'ten')."),
    ({"slice_floors": [{"column": "queue", "value": "legal", "floor": 0.9, "min_n": 10},
                       {"column": "queue", "value": "billing", "floor": None, "min_n": 10}]},
     "Slice floor 2, floor must be filled in."),
    ({"quality_floor": {"kind": "absolute", "value": 1.2}}, "Floor value must be at most 1 (you gave 1.2)."),
    ({"p95_latency_ms": 0}, "p95 latency target (ms) must be more than 0 (you gave 0)."),
])
def test_a_form_error_is_a_sentence_about_the_field_as_labelled(change, says):
    with pytest.raises(InvalidInput) as err:
        parse(GateSpec, {**template("cost-pressure"), **change})
    assert str(err.value) == says
    assert "[" not in str(err.value) and "_" not in str(err.value).replace("(you gave", "")


def test_the_floor_in_words_carries_its_own_number():
    assert floor_sentence(metric="accuracy", kind="relative-to-teacher", value=0.95) == \
        "the student's accuracy must reach at least 95.0% of the teacher's accuracy on the holdout"
    for play in ("cost-pressure", "latency", "stability", "specialization"):
        assert not re.search(r"\d+ ?%|\d\.\d|\d+ points", template(play)["notes"])  # never restates the bar


def test_a_class_the_student_never_predicts_is_named_with_the_teachers_count():
    run = TrainingRun(id=3, project_id=1, teacher_run_id=1, family="ngram", size="tiny", status="done", config={},
                      metrics={"n_val": 80, "val_predicted": {"billing": 70, "legal": 0, "spam": 10, "rare": 0},
                               "val_teacher_labels": {"billing": 60, "legal": 12, "spam": 8, "rare": 0}})
    [missing] = never_predicted(run)  # "rare" is never predicted but the teacher never says it either
    assert (missing.label, missing.teacher_count) == ("legal", 12)
    assert missing.sentence(3).startswith("Run #3 never predicts 'legal' on its 80 validation rows, where the "
                                          "teacher answered 'legal' 12 times")
    assert never_predicted(TrainingRun(id=4, project_id=1, teacher_run_id=1, family="ngram", size="tiny",
                                       status="running", config={}, metrics={})) == []
