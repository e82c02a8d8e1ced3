"""Files that crashed or misled the importer (issue 11), and inputs it wrongly refused: each is read correctly or
refused with a sentence naming the line or row, the column and the fix; nothing is stored on a refusal."""

from __future__ import annotations

import pytest
from data_helpers import routing, snapshot

from core.data import importer
from core.domain.errors import InvalidInput
from core.store.artifacts import load_table
from core.store.models import Artifact

MAPPING = {"id": "id", "text": "text"}
LABELLED = {**MAPPING, "reference": "label"}


def _import(session, demo, filename: str, data: bytes, mapping: dict = MAPPING):
    return importer.import_dataset(session, actor=demo["dana"], project=routing(session), data=data,
                                   filename=filename, mapping=mapping)


def _rows(session, dataset) -> list[dict]:
    df = load_table(session.get(Artifact, dataset.artifact_id))
    return df[[c for c in ("id", "text", "reference", "queue") if c in df]].to_dict("records")


@pytest.mark.parametrize(("name", "data", "mapping", "expected"), [
    ("carriage-return-only", b"id,text,label\r1,my invoice,billing\r2,app crashes,technical\r", LABELLED,
     [{"id": "1", "text": "my invoice", "reference": "billing"},
      {"id": "2", "text": "app crashes", "reference": "technical"}]),
    ("blank-first-line", b"\n\nid,text\n1,hello there\n", MAPPING, [{"id": "1", "text": "hello there"}]),
    ("semicolon-delimited", b"id;text;queue\n1;Hallo, mein Konto;account\n2;Rechnung falsch;billing\n",
     {**MAPPING, "slices": ["queue"]},
     [{"id": "1", "text": "Hallo, mein Konto", "queue": "account"},
      {"id": "2", "text": "Rechnung falsch", "queue": "billing"}]),
])
def test_odd_but_honest_files_are_read_correctly(session, demo, name, data, mapping, expected):
    dataset = _import(session, demo, "t.csv", data, mapping)
    got = _rows(session, dataset)
    assert [{k: r[k] for k in e} for r, e in zip(got, expected, strict=True)] == expected


@pytest.mark.parametrize(("name", "filename", "data", "mapping", "fragments"), [
    ("deeply-nested-jsonl", "t.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2", "text": ' + b"[" * 50_000
     + b"]" * 50_000 + b"}\n", MAPPING, ["line 2 of t.jsonl nests objects or lists too deeply", "flat"]),
    ("jsonl-nan", "t.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2", "text": NaN}\n', MAPPING,
     ["line 2 of t.jsonl, column text: holds NaN", "write null"]),
    ("jsonl-infinity", "t.jsonl", b'{"id": "1", "text": "ok", "label": Infinity}\n', LABELLED,
     ["line 1 of t.jsonl, column label: holds Infinity"]),
    ("nan-as-a-label", "t.csv", b"id,text,label\n1,my invoice,billing\n2,who knows,NaN\n", LABELLED,
     ["row 2, column label: 'NaN' is how a missing value is written, not a label", "leave the cell empty"]),
    ("semicolons-with-a-ragged-row", "t.csv", b"id;text\n1;a\n2;b;c\n", MAPPING,
     ["row 2: has 3 fields where the header has 2 (columns read as separated by semicolons)"]),
])
def test_malformed_files_get_one_sentence_and_store_nothing(session, demo, name, filename, data, mapping,
                                                            fragments):
    before = snapshot(session)
    with pytest.raises(InvalidInput) as err:
        _import(session, demo, filename, data, mapping)
    message = str(err.value)
    assert all(f in message for f in fragments), message
    assert message.endswith(".") and "\n" not in message and snapshot(session) == before


def test_text_that_looks_like_a_formula_or_html_is_data_and_is_kept_as_it_came(session, demo):
    texts = ['=HYPERLINK("http://x.example","click")', "@everyone look", "+1 555 0100", "-1 for this",
             "hi <script>alert(1)</script>", "[x](javascript:alert(1))"]
    rows = "id,text,queue\n" + "".join(f'{i},"{t.replace(chr(34), chr(34) * 2)}",=SUM(A{i})\n'
                                      for i, t in enumerate(texts))
    dataset = _import(session, demo, "t.csv", rows.encode(), {**MAPPING, "slices": ["queue"]})
    got = _rows(session, dataset)
    assert [r["text"] for r in got] == texts and got[0]["queue"] == "=SUM(A0)"
