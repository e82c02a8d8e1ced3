"""The decision record: Markdown and one offline HTML file, ending with the audit chain's head hash."""

from __future__ import annotations

import re

import pytest
from review_helpers import approve

from core.access import people
from core.decision import decision, record
from core.domain.errors import PermissionDenied
from core.store import audit

EVIL = "<script>alert('owned')</script> & | pipes"


@pytest.fixture
def story(session, demo, gated, failing_eval, passing_eval):
    decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale=EVIL,
                    evaluation_id=failing_eval.id)
    return gated


def test_markdown_tells_the_story_and_ends_with_the_head_hash(session, demo, story, failing_eval):
    md = record.export(session, actor=demo["val"], project=story, fmt="md")
    for heading in ("Trigger (qualification)", "Success gate versions", "Data audit", "Training runs",
                    "Evaluations", "Reviews", "Sign-offs", "Decisions", "Audit chain"):
        assert f"## {heading}" in md
    assert failing_eval.report_hash in md and "slice category=threat" in md
    assert "category=threat (FAIL): 100 more training examples" in md
    head = audit.head_hash(session)
    assert md.rstrip().endswith(f"`stillroom audit verify --expect-head {head}`).")
    assert "<script>" not in md and "\\|" in md


def test_html_is_self_contained_and_escapes_user_text(session, demo, story):
    page = record.export(session, actor=demo["sam"], project=story, fmt="html")
    assert audit.head_hash(session) in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt; &amp;" in page
    assert "<script>alert('owned')" not in page
    assert re.search(r"<script[^>]*\bsrc=", page) is None and "* plotly.js v" in page  # inlined, offline
    assert "Criteria by round" in page


def test_record_lists_reviews_sign_offs_and_thresholds(session, demo, gated, passing_eval):
    approve(session, demo, gated, passing_eval)
    md = record.export(session, actor=demo["oscar"], project=gated, fmt="md")
    assert "| val | yes | " + passing_eval.report_hash in md
    assert "student-right 5" in md and "| 0.5 |" in md


def test_exporting_records_no_event_and_needs_a_role(session, demo, story):
    head = audit.head_hash(session)
    record.export(session, actor=demo["dana"], project=story, fmt="md")
    assert audit.head_hash(session) == head
    outsider = people.create_user(session, actor=demo["admin"], username="olive", display_name="Olive",
                                  password="outsider-pass-123")
    with pytest.raises(PermissionDenied):
        record.export(session, actor=outsider, project=story, fmt="md")
