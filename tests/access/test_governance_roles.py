"""Project roles: admin-only assignment and separation of duties."""

import pytest
from sqlmodel import func, select

from core.access import projects
from core.domain.errors import InvalidInput, NotFound, PermissionDenied, SeparationOfDuties
from core.domain.roles import Role
from core.store.models import AuditEvent, RoleAssignment


def _n(session, model):
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def empty_project(session, demo):
    return projects.create_project(session, actor=demo["admin"], name="Fresh")


def test_driver_cannot_also_be_validator(session, demo, empty_project):
    projects.assign_role(session, actor=demo["admin"], project=empty_project, username="dana", role="driver")
    before = (_n(session, RoleAssignment), _n(session, AuditEvent))
    with pytest.raises(SeparationOfDuties, match="must not validate it"):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="dana",
                             role="validator")
    assert (_n(session, RoleAssignment), _n(session, AuditEvent)) == before


def test_validator_cannot_also_be_driver(session, demo, empty_project):
    projects.assign_role(session, actor=demo["admin"], project=empty_project, username="val", role="validator")
    with pytest.raises(SeparationOfDuties):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="val", role="driver")


def test_one_person_may_hold_sponsor_and_driver(session, demo, empty_project):
    for role in ("sponsor", "driver"):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="sam", role=role)
    assert projects.roles_of(session, project_id=empty_project.id, user_id=demo["sam"].id) == {
        Role.SPONSOR, Role.DRIVER}


def test_only_admin_assigns_roles(session, demo, empty_project):
    with pytest.raises(PermissionDenied):
        projects.assign_role(session, actor=demo["sam"], project=empty_project, username="sam", role="sponsor")


def test_only_admin_creates_projects(session, demo):
    with pytest.raises(PermissionDenied):
        projects.create_project(session, actor=demo["sam"], name="Mine")


def test_unknown_role_and_unknown_user_are_invalid_input(session, demo, empty_project):
    with pytest.raises(InvalidInput, match="unknown role 'boss'"):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="sam", role="boss")
    with pytest.raises(NotFound, match="no user named 'ghost'"):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="ghost",
                             role="sponsor")


def test_assigning_twice_is_refused(session, demo, empty_project):
    projects.assign_role(session, actor=demo["admin"], project=empty_project, username="sam", role="sponsor")
    with pytest.raises(InvalidInput, match="already sponsor"):
        projects.assign_role(session, actor=demo["admin"], project=empty_project, username="sam", role="sponsor")


def test_removing_a_role_is_audited_and_keeps_the_history(session, demo, empty_project):
    """Removing the driver role lets the person hold validator from now on, but it does not erase what they
    built: the history rule (tests/access/test_governance_history_sod.py) still keeps them off their own work."""
    projects.assign_role(session, actor=demo["admin"], project=empty_project, username="dana", role="driver")
    projects.remove_role(session, actor=demo["admin"], project=empty_project, username="dana", role="driver")
    projects.assign_role(session, actor=demo["admin"], project=empty_project, username="dana", role="validator")
    actions = session.exec(select(AuditEvent.action).where(AuditEvent.project_id == empty_project.id)).all()
    assert actions == ["project.create", "role.assign", "role.remove", "role.assign"]


def test_empty_and_duplicate_project_names_are_refused(session, demo):
    with pytest.raises(InvalidInput, match="name is empty"):
        projects.create_project(session, actor=demo["admin"], name="  ")
    projects.create_project(session, actor=demo["admin"], name="Twice")
    with pytest.raises(InvalidInput, match="already exists"):
        projects.create_project(session, actor=demo["admin"], name="Twice")


def test_non_admin_sees_only_projects_they_hold_a_role_on(session, demo, empty_project):
    names = {p.name for p in projects.projects_for(session, user=demo["sam"])}
    assert "Fresh" not in names and names
    assert "Fresh" in {p.name for p in projects.projects_for(session, user=demo["admin"])}
