"""Issue 19: every line of "waiting on you" names the page that does it (and the evaluation, where there is
one), and a person lands on the project holding their oldest waiting item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import good_qualification
from core.access import projects
from core.decision import portfolio
from core.demo import seed as demo_mod
from core.gate import gate
from core.qualify import qualification


def _waiting(session, user, name):
    return {r.name: r for r in portfolio.portfolio(session, user=user)}[name].waiting


def test_each_waiting_line_names_the_page_that_does_it(session, demo, moderation):
    assert [(w.text, w.page) for w in _waiting(session, demo["sam"], moderation.name)] == [
        ("Qualify the trigger", "qualify")]
    qualification.record(session, actor=demo["sam"], project=moderation, inputs=good_qualification(),
                         verdict="proceed")
    assert [w.page for w in _waiting(session, demo["sam"], moderation.name)] == ["gate"]
    gate.lock(session, actor=demo["sam"], project=moderation, spec=gate.template("cost-pressure"))
    assert [w.page for w in _waiting(session, demo["dana"], moderation.name)] == ["import_data"]


def test_a_review_line_opens_the_review_page_on_its_evaluation(session, demo, gated, failing_eval):
    (item,) = _waiting(session, demo["val"], gated.name)
    assert (item.page, item.evaluation_id) == ("review", failing_eval.id)
    assert item.since >= failing_eval.created_at.replace(tzinfo=UTC)  # it waits since the evaluation


def test_an_admin_is_sent_to_the_admin_page_for_missing_roles(session, demo):
    project = projects.create_project(session, actor=demo["admin"], name="Unstaffed", description="no roles yet")
    (item,) = _waiting(session, demo["admin"], project.name)
    assert (item.page, item.text) == ("admin", "Assign sponsor, driver, validator, operator")


def test_the_person_lands_on_the_project_with_their_oldest_waiting_item(session, demo, moderation):
    from data_helpers import import_rows, ticket_rows

    routing = projects.get_project(session, demo_mod.ROUTING)
    qualification.record(session, actor=demo["sam"], project=moderation, inputs=good_qualification(),
                         verdict="proceed")
    gate.lock(session, actor=demo["sam"], project=moderation, spec=gate.template("cost-pressure"))
    import_rows(session, demo["dana"], ticket_rows(100))  # routing moves on: its next step waits since now
    # Both wait on dana at the same step; moderation's import has waited longer, though routing sorts first.
    assert [w.text for w in _waiting(session, demo["dana"], routing.name)] == ["Fix the holdout"]
    assert [w.text for w in _waiting(session, demo["dana"], moderation.name)] == ["Import production inputs"]
    assert portfolio.landing_project(session, user=demo["dana"]) == moderation.id


def test_the_oldest_waiting_item_beats_the_project_furthest_along(session, demo, monkeypatch):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [portfolio.ProjectStatus(1, "far along", 5, "", {}, waiting=[
                portfolio.WaitingItem("Decide: ship, iterate or kill", "decide", t0 + timedelta(days=2))]),
            portfolio.ProjectStatus(2, "early", 1, "", {}, waiting=[
                portfolio.WaitingItem("Qualify the trigger", "qualify", t0)]),
            portfolio.ProjectStatus(3, "furthest, nothing waiting", 5, "", {})]
    monkeypatch.setattr(portfolio, "portfolio", lambda session, user: rows)
    assert portfolio.landing_project(session, user=demo["sam"]) == 2
    monkeypatch.setattr(portfolio, "portfolio", lambda session, user: [rows[0].__class__(
        4, "a", 2, "", {}), rows[2]])
    assert portfolio.landing_project(session, user=demo["sam"]) == 3  # nothing waits: the furthest along
