"""The portfolio and audit pages: what each person sees, charts, and the chain check."""

from __future__ import annotations

import json
import re

from pages_helpers import app_as, by_label, page_links, texts
from sqlmodel import select

from core.access import projects
from core.store.models import AuditEvent


def test_portfolio_shows_every_project_its_step_roles_and_what_waits_on_the_sponsor(demo, session):
    at = app_as(demo["sam"], page="pages/portfolio.py")
    assert texts(at.title) == [":material/dashboard: Portfolio"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Projects"] == "2"
    assert metrics["Gates locked"] == "1"
    table = at.dataframe[0].value
    by_name = table.set_index("Project")
    assert by_name.loc["Support ticket routing", "Step"] == "3/5 · Build the data set"
    assert by_name.loc["Comment moderation", "Step"] == "1/5 · Qualify the trigger"
    assert by_name.loc["Support ticket routing", "Driver"] == "dana"
    moderation = projects.get_project(session, "Comment moderation")
    assert page_links(at) == [("**Qualify the trigger** · Comment moderation", "qualify", f"project={moderation.id}")]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["data"][0]["x"] == [1, 0, 1, 0, 0]


def test_portfolio_of_a_person_without_projects_says_what_to_do(demo, session):
    from core.access import people

    newbie = people.create_user(session, actor=demo["admin"], username="newbie", display_name="New Person",
                                password="newbie-pass-1")
    at = app_as(newbie, page="pages/portfolio.py")
    assert "No projects to show yet" in at.info[0].value


def test_user_text_is_rendered_as_text_not_markup(demo, session):
    evil = "**Loud** [click](http://evil.example) <script>alert(1)</script>"
    p = projects.create_project(session, actor=demo["admin"], name=evil)
    projects.assign_role(session, actor=demo["admin"], project=p, username="sam", role="sponsor")
    at = app_as(demo["sam"], page="pages/portfolio.py")
    waiting = "\n".join(label for label, _, _ in page_links(at))
    assert r"\*\*Loud\*\* \[click\]\(http://evil\.example\)" in waiting.replace(r"\:", ":")
    assert "<script>" not in waiting
    assert evil in at.dataframe[0].value["Project"].tolist()  # tables show the name exactly as typed


def test_audit_page_lists_the_projects_events_and_verifies_the_chain(demo, session):
    routing = projects.get_project(session, "Support ticket routing")
    at = app_as(demo["sam"], page="pages/audit.py", project_id=routing.id)
    events = at.dataframe[0].value
    assert {"gate.lock", "qualification.record", "role.assign"} <= set(events["Action"])
    by_label(at.button, "Verify the audit chain").click().run()
    assert at.success[0].value.startswith("Audit chain intact:")


def test_audit_details_read_as_key_value_text_with_rounded_numbers(demo, session):
    routing = projects.get_project(session, "Support ticket routing")
    at = app_as(demo["sam"], page="pages/audit.py", project_id=routing.id)
    events = at.dataframe[0].value
    details = events["Details"].tolist()
    assert not [d for d in details if d.startswith("{") or '"' in d]  # no raw JSON
    assert not [d for d in details if re.search(r"\d\.\d{4,}", d)]  # no float noise: at most 3 decimals
    qualified = events.loc[events["Action"] == "qualification.record", "Details"].iloc[0]
    assert re.search(r"(^|; )verdict: proceed(;|$)", qualified), qualified


def test_audit_page_reports_a_row_edited_outside_the_app(demo, engine, session):
    first = session.exec(select(AuditEvent).order_by(AuditEvent.id)).first()
    with engine.begin() as conn:  # an outsider drops the guard and edits a row
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
        conn.exec_driver_sql("UPDATE audit_event SET actor = 'mallory' WHERE id = ?", (first.id,))
    at = app_as(demo["admin"], page="pages/audit.py")
    by_label(at.button, "Verify the audit chain").click().run()
    assert at.error[0].value.startswith(f"Audit chain broken at event #{first.id}")


def test_audit_filter_by_action(demo):
    at = app_as(demo["admin"], page="pages/audit.py")
    by_label(at.text_input, "Action filter").input("gate.lock").run()
    assert set(at.dataframe[0].value["Action"]) == {"gate.lock"}
