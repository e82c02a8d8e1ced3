"""Projects and the roles people hold on them.

Rules: only an admin creates projects and assigns roles; the driver and the
validator of a project are never the same person.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, col, select

from core.access.people import get_user, require_admin
from core.domain.errors import InvalidInput, NotFound, PermissionDenied, SeparationOfDuties
from core.domain.roles import Role
from core.store import audit, vouched
from core.store.models import Project, RoleAssignment, User

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
    """The roles the audit chain vouches ``user_id`` holds on the project (a role INSERTed with SQL is none)."""
    rows = vouched.rows(session, RoleAssignment, RoleAssignment.project_id == project_id,
                        RoleAssignment.user_id == user_id)
    return {Role(r.role) for r in rows}


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
    row = vouched.first(session, RoleAssignment, RoleAssignment.project_id == project.id,
                        RoleAssignment.user_id == user.id, RoleAssignment.role == role.value)
    if row is None:
        raise InvalidInput(f"{username} is not {role.value} of {project.name!r}: nothing to remove.", field="role")
    session.delete(row)
    audit.record(
        session, actor=actor, action="role.remove", entity="role", entity_id=row.id,
        project_id=project.id, payload={"username": username, "role": role.value},
    )
    session.commit()


def roster(session: Session, *, project_ids: list[int] | None = None) -> dict[int, dict[str, list[str]]]:
    """{project_id: {role: [username, ...]}} from the vouched roles and accounts (one read of each)."""
    where = () if project_ids is None else (col(RoleAssignment.project_id).in_(project_ids),)
    names = dict(vouched.values(session, User, User.id, User.username))
    held = sorted(((pid, role, names[uid]) for pid, role, uid in vouched.values(
        session, RoleAssignment, RoleAssignment.project_id, RoleAssignment.role, RoleAssignment.user_id, where=where)
        if uid in names), key=lambda t: t[2])
    out: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pid, role, username in held:
        out[pid][role].append(username)
    return out


def projects_for(session: Session, *, user: User) -> list[Project]:
    """The projects a person can open: all for an admin, else those they hold a role on."""
    if user.is_admin:
        return list_projects(session)
    ids = {r.project_id for r in vouched.rows(session, RoleAssignment, RoleAssignment.user_id == user.id)}
    return list(session.exec(select(Project).where(col(Project.id).in_(ids)).order_by(Project.name)).all())


def roles_held(session: Session, *, user_id: int) -> set[Role]:
    """Every role a person holds on any project (what the app's navigation offers them)."""
    return {Role(r.role) for r in vouched.rows(session, RoleAssignment, RoleAssignment.user_id == user_id)}


def can_view(session: Session, *, user: User, project: Project) -> None:
    if user.is_admin or roles_of(session, project_id=project.id, user_id=user.id):
        return
    raise PermissionDenied(f"{user.username} holds no role on project {project.name!r}.")
