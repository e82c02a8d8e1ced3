"""Teacher outputs produced elsewhere, imported from CSV, JSONL or Parquet: checked row by row, stored whole."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlmodel import func, select
from teacher_helpers import LABELS, make_dataset, routing, ticket_rows

from core.domain.errors import InvalidInput, PermissionDenied
from core.store.models import Artifact, TeacherRun
from core.teacher import runs
from core.teacher.filter import kept_outputs


@pytest.fixture
def dataset(session, demo):
    return make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(6))


def import_file(session, demo, dataset, path, **kw):
    return runs.import_file(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                            path=path, **kw)


def test_a_csv_with_labels_and_confidence_becomes_a_run(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_text("ID,label,confidence,raw\nT0000,billing,0.9,Billing\nT0001,technical,,tech\n"
                    "T0002,account,0.4,\n", encoding="utf-8")
    run = import_file(session, demo, dataset, path)
    out = kept_outputs(session, filter_or_run=run)
    assert (run.adapter, run.n_rows, run.labels) == ("file", 3, LABELS)
    assert out["label"].tolist() == ["billing", "technical", "account"]
    assert out["confidence"].tolist()[0] == 0.9 and pd.isna(out["confidence"].tolist()[1])
    assert run.config["source"] == "outputs.csv" and len(run.config["source_sha256"]) == 64
    assert run.stats["dataset_rows_without_output"] == 3


def test_jsonl_probs_are_normalised_and_give_the_label_where_it_is_blank(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.jsonl"
    rows = [{"id": "T0000", "label": "billing", "probs": [6, 3, 1]},
            {"id": "T0001", "label": None, "probs": [0.1, 0.7, 0.2], "raw": "technical!"}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = kept_outputs(session, filter_or_run=import_file(session, demo, dataset, path)).set_index("id")
    assert out.loc["T0000", "probs"].tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert out.loc["T0000", "confidence"] == pytest.approx(0.6)
    assert out.loc["T0001", "label"] == "technical" and out.loc["T0001", "raw"] == "technical!"


def test_parquet_with_one_probability_column_per_label(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.parquet"
    pd.DataFrame({"id": ["T0003", "T0004"], "label": ["billing", "technical"],
                  "prob_account": [0.1, 0.2], "prob_billing": [0.8, 0.1], "prob_technical": [0.1, 0.7]}
                 ).to_parquet(path)
    run = import_file(session, demo, dataset, path)
    out = kept_outputs(session, filter_or_run=run)
    assert run.labels == LABELS  # the dataset's order, not the columns'
    assert out["probs"].iloc[0].tolist() == pytest.approx([0.8, 0.1, 0.1])


CSV_HEAD = "id,label,confidence,probs\n"
BAD_FILES = [
    ("unknown id", "outputs.csv", CSV_HEAD + "T0000,billing,,\nT9999,billing,,\n",
     "1 of the 2 rows of outputs.csv are not rows of dataset #"),
    ("duplicate id", "outputs.csv", CSV_HEAD + "T0000,billing,,\nT0001,account,,\nT0000,account,,\n",
     "row 3, column id: 'T0000' appears again (first at row 1)"),
    ("blank id", "outputs.csv", CSV_HEAD + "T0000,billing,,\n ,account,,\n", "row 2, column id: the cell is empty"),
    ("unknown label", "outputs.csv", CSV_HEAD + "T0000,refunds,,\n",
     "row 1, column label: 'refunds' is not one of the labels"),
    ("blank label, no probs", "outputs.csv", CSV_HEAD + "T0000,,0.5,\n", "row 1, column label: the cell is empty"),
    ("confidence not a number", "outputs.csv", CSV_HEAD + "T0000,billing,high,\n",
     "row 1, column confidence: 'high' is not a number between 0 and 1"),
    ("confidence above 1", "outputs.csv", CSV_HEAD + "T0000,billing,87,\n", "row 1, column confidence"),
    ("probs of the wrong length", "outputs.csv", CSV_HEAD + 'T0000,billing,,"[0.5, 0.5]"\n',
     "row 1, column probs: 2 values that are not a distribution; give 3"),
    ("probs not JSON", "outputs.csv", CSV_HEAD + "T0000,billing,,lots\n", "row 1, column probs: not a list"),
    ("no id column", "outputs.csv", "key,label\nT0000,billing\n", "has no id column"),
    ("no label column", "outputs.csv", "id,score\nT0000,0.5\n", "has no label column"),
    ("duplicate columns", "outputs.csv", "id,label,Label\nT0000,billing,billing\n",
     "column label appears more than once"),
    ("header only", "outputs.csv", CSV_HEAD, "has no rows"),
    ("empty file", "outputs.csv", "", "is empty"),
    ("unknown type", "outputs.xlsx", "x", "unknown file type"),
    ("broken jsonl", "outputs.jsonl", '{"id": "T0000", "label": \n', "cannot be read as jsonl"),
]


@pytest.mark.parametrize(("case", "name", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_refused_with_its_sentence_and_nothing_is_stored(session, demo, dataset, tmp_path,
                                                                       case, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    artifacts_before = session.exec(select(func.count()).select_from(Artifact)).one()
    with pytest.raises(InvalidInput) as err:
        import_file(session, demo, dataset, path)
    assert message in str(err.value)
    assert session.exec(select(func.count()).select_from(TeacherRun)).one() == 0
    assert session.exec(select(func.count()).select_from(Artifact)).one() == artifacts_before


def test_a_file_that_is_not_utf8_is_refused(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_bytes("id,label,raw\nT0000,billing,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        import_file(session, demo, dataset, path)


def test_only_the_driver_imports_outputs(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_text("id,label\nT0000,billing\n", encoding="utf-8")
    with pytest.raises(PermissionDenied, match="import teacher outputs"):
        runs.import_file(session, actor=demo["val"], project=routing(session), dataset_id=dataset.id, path=path)


def test_an_upload_is_imported_from_its_bytes_under_its_own_name(session, demo, dataset):
    data = b"id,label\nT0000,billing\nT0001,technical\n"
    run = runs.import_upload(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                             data=data, filename="from-the-vendor.csv")
    assert (run.n_rows, run.config["source"]) == (2, "from-the-vendor.csv")
    assert run.config["source_sha256"] == __import__("hashlib").sha256(data).hexdigest()


def _outputs_with_foreign_rows(dataset_ids: list[str], n_foreign: int) -> str:
    rows = [f"{i},billing,," for i in dataset_ids] + [f"X{n:05d},billing,," for n in range(n_foreign)]
    return CSV_HEAD + "\n".join(rows) + "\n"


def test_foreign_rows_are_counted_in_the_refusal_not_named_one_by_one(session, demo, dataset, tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_text(_outputs_with_foreign_rows(["T0000", "T0001"], 201), encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        import_file(session, demo, dataset, path)
    assert "201 of the 203 rows of outputs.csv are not rows of dataset #" in str(err.value)
    assert "(the first: row 3, id 'X00000')" in str(err.value) and "drop those rows" in str(err.value)
    assert session.exec(select(func.count()).select_from(TeacherRun)).one() == 0


def test_foreign_rows_can_be_dropped_and_their_count_is_recorded(session, demo, dataset, tmp_path):
    data = _outputs_with_foreign_rows(["T0000", "T0001"], 201).encode()
    run = runs.import_upload(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                             data=data, filename="before-dedup.csv", drop_foreign=True)
    assert run.n_rows == 2 and run.stats["foreign_rows_dropped"] == 201
    assert run.config["drop_foreign"] is True
