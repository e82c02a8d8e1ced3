"""Importing production inputs: the dataset schema, and every malformed file refused with its own sentence."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_helpers import csv_bytes, routing, snapshot, ticket_rows

from core.data import importer
from core.domain.errors import InvalidInput, PermissionDenied
from core.store.artifacts import file_sha256, load_table, path_of
from core.store.models import Artifact, AuditEvent

MAPPING = {"id": "id", "text": "text"}


def _csv(text: str) -> bytes:
    return text.encode("utf-8")


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


WIDE = ",".join(["id", "text"] + [f"c{i}" for i in range(499)])
SLICES17 = [f"s{i}" for i in range(17)]

# (case id, file name, bytes, mapping, extra keyword arguments, fragments the sentence must hold)
MALFORMED = [
    ("bad-encoding", "t.csv", b"id,text\n1,ok\n2,caf\xe9 au lait\n", MAPPING, {},
     ["line 3", "not UTF-8", "save the file with UTF-8"]),
    ("empty-file", "t.csv", b"", MAPPING, {}, ["is empty (0 bytes)"]),
    ("blank-lines-only", "t.csv", b"\n  \n\n", MAPPING, {}, ["only blank lines"]),
    ("header-only", "t.csv", _csv("id,text\n"), MAPPING, {}, ["header but no data rows"]),
    ("missing-mapped-column", "t.csv", _csv("id,body\n1,hello\n"), MAPPING, {},
     ["the text column 'text' is not in t.csv", "id, body", "check the spelling"]),
    ("duplicate-column-names", "t.csv", _csv("id,text,text\n1,a,b\n"), MAPPING, {},
     ["names column 'text' twice", "rename one"]),
    ("unnamed-column", "t.csv", _csv("id,,text\n1,a,b\n"), MAPPING, {}, ["header column 2 has no name"]),
    ("duplicate-ids", "t.csv", _csv("id,text\n7,a\n8,b\n7,c\n"), MAPPING, {},
     ["row 3, column id:", "'7' is also the id of row 1", "must be unique"]),
    ("id-missing-values", "t.csv", _csv("id,text\n1,a\n,b\n,c\n"), MAPPING, {},
     ["row 2, column id: the cell is empty", "give every row an id", "1 more row has the same problem"]),
    ("blank-id", "t.csv", _csv('id,text\n1,a\n"   ",b\n'), MAPPING, {},
     ["row 2, column id: the cell holds only spaces"]),
    ("blank-text", "t.csv", _csv("id,text\n1,a\n2,\n"), MAPPING, {},
     ["row 2, column text: the cell is empty", "fill it or drop the row"]),
    ("text-too-long", "t.csv", _csv("id,text\n1," + "x" * 20_001 + "\n"), MAPPING, {},
     ["row 1, column text:", "20,001 characters long", "over the 20,000 allowed"]),
    ("unknown-label", "t.csv", _csv("id,text,label\n1,a,billing\n2,b,refnd\n"),
     {**MAPPING, "reference": "label", "labels": ["billing", "refund"]}, {},
     ["row 2, column label:", "'refnd' is not one of the allowed labels (billing, refund)"]),
    ("over-size-limit", "t.csv", _csv("id,text\n1,a fairly long ticket text\n"), MAPPING, {"max_bytes": 16},
     ["over the", "upload limit"]),
    ("bad-timestamp", "t.csv", _csv("id,text,at\n1,a,2024-05-01T10:00:00Z\n2,b,yesterday\n"),
     {**MAPPING, "timestamp": "at"}, {}, ["row 2, column at: 'yesterday' is not a date and time", "ISO 8601"]),
    ("jsonl-malformed-line", "t.jsonl", _jsonl('{"id": 1, "text": "a"}', '{"id": 2, "text": "b"'), MAPPING, {},
     ["line 2 of t.jsonl is not valid JSON"]),
    ("jsonl-not-an-object", "t.jsonl", _jsonl('{"id": 1, "text": "a"}', "[2, \"b\"]"), MAPPING, {},
     ["line 2 of t.jsonl holds a JSON list, not an object"]),
    ("jsonl-nested-value", "t.jsonl", _jsonl('{"id": 1, "text": {"en": "a"}}'), MAPPING, {},
     ["line 1 of t.jsonl, column text: holds a dict"]),
    ("jsonl-duplicate-key", "t.jsonl", _jsonl('{"id": 1, "text": "a", "text": "b"}'), MAPPING, {},
     ["line 1 of t.jsonl names key 'text' twice"]),
    ("jsonl-missing-text", "t.jsonl", _jsonl('{"id": 1, "text": "a"}', "", '{"id": 2}'), MAPPING, {},
     ["line 3, column text: the cell is empty"]),
    ("unsupported-extension", "t.xlsx", b"PK\x03\x04", MAPPING, {}, [".xlsx extension is not supported"]),
    ("corrupt-parquet", "t.parquet", b"PAR1 this is not parquet PAR1", MAPPING, {},
     ["not a readable Parquet file"]),
    ("parquet-nested-column", "t.parquet",
     _parquet(pa.table({"id": ["1"], "text": ["a"], "tags": [["x", "y"]]})), MAPPING, {},
     ["column tags: holds lists or records"]),
    ("blank-slice-value", "t.csv", _csv("id,text,queue\n1,a,billing\n2,b,\n"), {**MAPPING, "slices": ["queue"]},
     {}, ["row 2, column queue: the cell is empty"]),
    ("same-source-column-twice", "t.csv", _csv("id,text\n1,a\n"), {"id": "id", "text": "id"}, {},
     ["column 'id' is mapped twice (as id and as text)"]),
    ("too-many-slices", "t.csv", _csv(",".join(["id", "text", *SLICES17]) + "\n" + ",".join(["1"] * 19) + "\n"),
     {**MAPPING, "slices": SLICES17}, {}, ["17 slice columns are mapped, more than 16"]),
    ("too-many-columns", "t.csv", _csv(WIDE + "\n" + ",".join(["1"] * 501) + "\n"), MAPPING, {},
     ["has 501 columns, more than the 500"]),
    ("nul-bytes", "t.csv", b"id,text\n1,a\n2,b\x00c\n", MAPPING, {}, ["line 3 of t.csv contains a NUL byte"]),
    ("ragged-row", "t.csv", _csv("id,text\n1,a\n2,b,c\n3,d\n"), MAPPING, {},
     ["row 2: has 3 fields where the header has 2", "quote cells that contain commas"]),
    ("slice-named-like-a-field", "t.csv", _csv("id,text,reference\n1,a,x\n"),
     {**MAPPING, "slices": ["reference"]}, {}, ["slice column 'reference' has the name of a dataset field"]),
    ("labels-without-reference", "t.csv", _csv("id,text\n1,a\n"), {**MAPPING, "labels": ["a", "b"]}, {},
     ["allowed labels are given but no reference column is mapped"]),
    ("mapping-without-text", "t.csv", _csv("id,text\n1,a\n"), {"id": "id"}, {},
     ["Input text column must be filled in", "map the id and text fields"]),
]


@pytest.mark.parametrize(("filename", "data", "mapping", "extra", "fragments"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_file_is_refused_and_nothing_is_stored(session, demo, filename, data, mapping, extra, fragments):
    before = snapshot(session)
    with pytest.raises(InvalidInput) as err:
        importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=data,
                                filename=filename, mapping=mapping, **extra)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert message.endswith(".") and "\n" not in message
    session.rollback()
    assert snapshot(session) == before


def test_every_malformed_case_has_its_own_sentence(session, demo):
    messages = set()
    for _, filename, data, mapping, extra, _ in MALFORMED:
        with pytest.raises(InvalidInput) as err:
            importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=data,
                                    filename=filename, mapping=mapping, **extra)
        messages.add(str(err.value))
    assert len(messages) == len(MALFORMED) >= 20


def test_csv_import_stores_the_schema_with_its_hash_and_an_audit_event(session, demo):
    rows = ticket_rows(30)
    rows[0]["at"] = "2024-05-01T10:00:00+02:00"
    for r in rows[1:]:
        r["at"] = ""
    ds = importer.import_dataset(
        session, actor=demo["dana"], project=routing(session), data=csv_bytes(rows), filename="tickets.csv",
        mapping={"id": "ticket_id", "text": "body", "slices": ["queue", "channel"], "reference": "label",
                 "timestamp": "at", "labels": ["billing", "refund", "shipping", "legal_compliance"]},
    )
    assert (ds.operation, ds.purpose, ds.n_rows, ds.name) == ("import", "prompts", 30, "tickets")
    assert ds.mapping["slices"] == ["queue", "channel"] and ds.mapping["format"] == "csv"
    art = session.get(Artifact, ds.artifact_id)
    assert art.sha256 == file_sha256(path_of(art))
    df = load_table(art)
    assert list(df.columns) == ["id", "text", "reference", "timestamp", "queue", "channel"]
    assert df.loc[0, "timestamp"] == pd.Timestamp("2024-05-01T08:00:00Z")
    assert df["timestamp"].isna().sum() == 29
    assert df.loc[0, "id"] == "T00000" and df.loc[0, "reference"] == "legal_compliance"
    event = session.exec(AuditEvent.__table__.select().order_by(AuditEvent.id.desc())).first()
    assert event.action == "dataset.import" and event.entity_id == str(ds.id)
    assert json.loads(event.payload)["sha256"] == art.sha256


def test_jsonl_and_parquet_import_the_same_rows(session, demo):
    rows = [{"id": i, "text": f"text number {i}", "queue": "billing"} for i in range(5)]
    jsonl = "\n".join(json.dumps(r) for r in rows).encode()
    parquet = _parquet(pa.Table.from_pylist(rows))
    mapping = {"id": "id", "text": "text", "slices": ["queue"]}
    a = importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=jsonl,
                                filename="x.jsonl", mapping=mapping)
    b = importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=parquet,
                                filename="x.parquet", mapping=mapping, purpose="production")
    da, db = (load_table(session.get(Artifact, d.artifact_id)) for d in (a, b))
    assert da["id"].tolist() == db["id"].tolist() == [str(i) for i in range(5)]
    assert da["text"].tolist() == db["text"].tolist()
    assert b.purpose == "production" and session.get(Artifact, b.artifact_id).kind == "production"


def test_leading_dash_or_plus_in_plain_text_is_accepted(session, demo):
    data = _csv('id,text\n1,- refund please\n2,+1 555 0100 called twice\n3,price < 5 and > 2\n')
    ds = importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=data,
                                 filename="ok.csv", mapping=MAPPING)
    assert ds.n_rows == 3


def test_only_the_driver_can_import(session, demo):
    before = snapshot(session)
    with pytest.raises(PermissionDenied, match="Only a driver"):
        importer.import_dataset(session, actor=demo["val"], project=routing(session),
                                data=csv_bytes(ticket_rows(3)), filename="t.csv",
                                mapping={"id": "ticket_id", "text": "body"})
    assert snapshot(session) == before


def test_import_from_a_path_checks_the_size_before_reading(session, demo, tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes(ticket_rows(50)))
    with pytest.raises(InvalidInput, match="upload limit"):
        importer.import_dataset(session, actor=demo["dana"], project=routing(session), path=path,
                                mapping={"id": "ticket_id", "text": "body"}, max_bytes=100)
    ds = importer.import_dataset(session, actor=demo["dana"], project=routing(session), path=path,
                                 mapping={"id": "ticket_id", "text": "body"})
    assert ds.n_rows == 50 and ds.mapping["source"] == "big.csv"


def test_preview_shows_columns_first_rows_and_a_suggested_mapping():
    p = importer.preview(data=csv_bytes(ticket_rows(40)), filename="t.csv", n=5)
    assert p.columns == ["ticket_id", "body", "queue", "channel", "label"]
    assert len(p.rows) == 5 and p.n_rows == 40 and p.format == "csv"
    assert p.suggested["id"] == "ticket_id" and p.suggested["text"] == "body"
    with pytest.raises(InvalidInput, match="not UTF-8"):
        importer.preview(data=b"id,text\n1,\xff\n", filename="t.csv")
