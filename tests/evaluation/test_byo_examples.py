"""Every example file under examples/byo is a shape `stillroom eval import` accepts, as the README says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.data import readers
from core.evaluation import imports

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "byo"


def _holdout(kind: str) -> pd.DataFrame:
    held = pd.read_csv(EXAMPLES / "holdout.csv", dtype=str)
    held["reference"] = {"label": "billing", "text": "Send the invoice", "json": '{"intent": "refund"}',
                         "ranking": "1"}[kind]
    if kind == "ranking":
        held["query_id"] = ["Q1", "Q1", "Q1", "Q2", "Q2"]
    return held


@pytest.mark.parametrize(("name", "kind", "ignored", "scores"), [
    ("label.csv", "label", [], []),
    ("label-with-text-and-scores.csv", "label", ["model_version"], ["judge_score"]),
    ("text.csv", "text", [], ["judge_score"]),
    ("json.jsonl", "json", [], []),
    ("ranking.csv", "ranking", [], []),
])
def test_each_example_file_is_an_accepted_shape(name, kind, ignored, scores):
    path = EXAMPLES / name
    source = readers.read_source(path.read_bytes(), name)
    checked = imports.validate(source, _holdout(kind), kind=kind, name=name)
    assert checked.missing == [] and checked.ignored == ignored and checked.scores == scores
    assert checked.frame["student_label"].notna().all()
