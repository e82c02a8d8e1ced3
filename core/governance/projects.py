"""Projects and the roles people hold on them.

Rules: only an admin creates projects and assigns roles; the driver and the
validator of a project are never the same person.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound, PermissionDenied, SeparationOfDuties
from core.governance import audit
from core.governance.people import get_user, require_admin
from core.models import Project, Role, RoleAssignment, User

# Pairs of roles one person may never hold together on one project.
EXCLUSIVE_ROLES = {Role.DRIVER: Role.VALIDATOR, Role.VALIDATOR: Role.DRIVER}

ROLE_DUTIES = {
    Role.SPONSOR: "qualifies the trigger, locks the success gate, decides ship, iterate or kill",
    Role.DRIVER: "imports data, runs the teacher, trains students, runs evaluations",
    Role.VALIDATOR: "reviews results and disagreements, signs off or rejects",
    Role.OPERATOR: "runs shadow mode and rollout, watches drift, triggers re-distillation",
}


def parse_role(value: str) -> Role:
    try:
        return Role((value or "").strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}: use one of {names}.", field="role") from None


def create_project(session: Session, *, actor: User, name: str, description: str = "") -> Project:
    require_admin(actor)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("project name is empty: give the project a name.", field="name")
    if len(name) > 120:
        raise InvalidInput("project name is longer than 120 characters: shorten it.", field="name")
    if session.exec(select(Project).where(Project.name == name)).first():
        raise InvalidInput(f"a project named {name!r} already exists: pick another name.", field="name")
    project = Project(name=name, description=(description or "").strip())
    session.add(project)
    session.flush()
    audit.record(
        session, actor=actor, action="project.create", entity="project", entity_id=project.id,
        project_id=project.id, payload={"name": name, "description": project.description},
    )
    session.commit()
    return project


def get_project(session: Session, name_or_id: str | int) -> Project:
    project = None
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        project = session.get(Project, int(name_or_id))
    if project is None:
        project = session.exec(select(Project).where(Project.name == str(name_or_id).strip())).first()
    if project is None:
        raise NotFound(
            f"no project named {name_or_id!r}: check the name with `stillroom projects list`.",
            field="project",
        )
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.exec(select(Project).order_by(Project.name)).all())


def roles_of(session: Session, *, project_id: int, user_id: int) -> set[Role]:
    rows = session.exec(
        select(RoleAssignment.role).where(
            RoleAssignment.project_id == project_id, RoleAssignment.user_id == user_id
        )
    ).all()
    return {Role(r) for r in rows}


def require_role(session: Session, *, actor: User, project: Project, role: Role, doing: str) -> None:
    """Raise PermissionDenied unless ``actor`` holds ``role`` on ``project``."""
    held = roles_of(session, project_id=project.id, user_id=actor.id)
    if role not in held:
        holds = ", ".join(sorted(r.value for r in held)) or "no role"
        article = "an" if role.value[0] in "aeiou" else "a"
        raise PermissionDenied(
            f"Only {article} {role.value} of project {project.name!r} can {doing}; "
            f"{actor.username} holds {holds} there."
        )


def assign_role(
    session: Session, *, actor: User, project: Project, username: str, role: Role | str
) -> RoleAssignment:
    require_admin(actor)
    role = parse_role(role) if isinstance(role, str) else role
    user = get_user(session, username)
    held = roles_of(session, project_id=project.id, user_id=user.id)
    if role in held:
        raise InvalidInput(
            f"{username} is already {role.value} of {project.name!r}: nothing to do.", field="role"
        )
    clash = EXCLUSIVE_ROLES.get(role)
    if clash in held:
        raise SeparationOfDuties(
            f"{username} is the {clash.value} of {project.name!r} and cannot also be its "
            f"{role.value}: whoever builds the student must not validate it. Pick someone else."
        )
    assignment = RoleAssignment(project_id=project.id, user_id=user.id, role=role.value)
    session.add(assignment)
    session.flush()
    audit.record(
        session, actor=actor, action="role.assign", entity="role", entity_id=assignment.id,
        project_id=project.id, payload={"username": username, "role": role.value},
    )
    session.commit()
    return assignment


def remove_role(
    session: Session, *, actor: User, project: Project, username: str, role: Role | str
) -> None:
    require_admin(actor)
    role = parse_role(role) if isinstance(role, str) else role
    user = get_user(session, username)
    row = session.exec(
        select(RoleAssignment).where(
            RoleAssignment.project_id == project.id,
            RoleAssignment.user_id == user.id,
            RoleAssignment.role == role.value,
        )
    ).first()
    if row is None:
        raise InvalidInput(f"{username} is not {role.value} of {project.name!r}: nothing to remove.", field="role")
    session.delete(row)
    audit.record(
        session, actor=actor, action="role.remove", entity="role", entity_id=row.id,
        project_id=project.id, payload={"username": username, "role": role.value},
    )
    session.commit()


def roster(session: Session, *, project_ids: list[int] | None = None) -> dict[int, dict[str, list[str]]]:
    """{project_id: {role: [username, ...]}} in one query."""
    q = select(RoleAssignment.project_id, RoleAssignment.role, User.username).join(
        User, User.id == RoleAssignment.user_id
    )
    if project_ids is not None:
        q = q.where(RoleAssignment.project_id.in_(project_ids))
    out: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pid, role, username in session.exec(q.order_by(User.username)).all():
        out[pid][role].append(username)
    return out


def projects_for(session: Session, *, user: User) -> list[Project]:
    """The projects a person can open: all for an admin, else those they hold a role on."""
    if user.is_admin:
        return list_projects(session)
    q = (
        select(Project)
        .join(RoleAssignment, RoleAssignment.project_id == Project.id)
        .where(RoleAssignment.user_id == user.id)
        .distinct()
        .order_by(Project.name)
    )
    return list(session.exec(q).all())


def roles_held(session: Session, *, user_id: int) -> set[Role]:
    """Every role a person holds on any project (what the app's navigation offers them)."""
    rows = session.exec(select(RoleAssignment.role).where(RoleAssignment.user_id == user_id).distinct()).all()
    return {Role(r) for r in rows}


def can_view(session: Session, *, user: User, project: Project) -> None:
    if user.is_admin or roles_of(session, project_id=project.id, user_id=user.id):
        return
    raise PermissionDenied(f"{user.username} holds no role on project {project.name!r}.")
