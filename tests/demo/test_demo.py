"""The demo: people for every role and projects at different steps."""

from pathlib import Path

from sqlmodel import func, select

from core.access import people, projects
from core.decision import portfolio
from core.demo import seed as demo_data
from core.gate import gate
from core.store.models import AuditEvent


def test_seeding_twice_adds_nothing_the_second_time(session, demo):
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    assert demo_data.seed(session) == {"people": 0, "projects": 0}
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events


def test_every_demo_person_can_log_in_with_the_readme_password(session, demo):
    for person in demo_data.DEMO_PEOPLE:
        assert people.authenticate(session, username=person.username, password=person.password)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert all(p.password in readme for p in demo_data.DEMO_PEOPLE)


def test_fresh_seed_creates_people_and_projects_at_different_steps(session):
    assert demo_data.seed(session) == {"people": 5, "projects": 2}
    routing = projects.get_project(session, demo_data.ROUTING)
    assert gate.current(session, project_id=routing.id).version == 1
    sam = people.get_user(session, "sam")
    rows = {r.name: r for r in portfolio.portfolio(session, user=sam)}
    assert rows[demo_data.MODERATION].waiting_on_you == ["Qualify the trigger"]
    assert rows[demo_data.ROUTING].stage == 3
