"""The portfolio: where every project stands in the five-step cadence, who holds
which role, and what is waiting on the person looking.

Built from a fixed handful of queries whatever the number of projects, so the page stays
fast with hundreds of projects and a long audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.access.projects import projects_for, roster
from core.domain.roles import Role
from core.domain.rollout_state import SHADOW
from core.store import vouched
from core.store.jobs import JobKind
from core.store.models import (
    Dataset,
    Decision,
    Evaluation,
    GateVersion,
    Holdout,
    Job,
    Project,
    Qualification,
    RedistillRequest,
    RoleAssignment,
    RolloutEvent,
    SignOff,
    TeacherRun,
    TrainingRun,
    User,
)

# Jobs that run the teacher (the demo's background teacher is one too).
TEACHER_JOBS = (JobKind.TEACHER_RUN.value, JobKind.DEMO_TEACHER.value)

STAGES = (
    "Qualify the trigger",
    "Lock the success gate",
    "Build the data set",
    "Train and evaluate",
    "Decide",
)


@dataclass(frozen=True)
class WaitingItem:
    """One piece of work waiting on the person: what to do, the page that does it (its address in the app, e.g.
    ``review``), the evaluation it concerns if any, and since when it has waited (the project's last move)."""

    text: str
    page: str
    since: datetime
    evaluation_id: int | None = None


@dataclass
class ProjectStatus:
    project_id: int
    name: str
    stage: int  # 1..5
    status: str
    roles: dict[str, list[str]]
    qualification_verdict: str | None = None
    payback_months: float | None = None
    gate_version: int | None = None
    gate_hash: str | None = None
    waiting: list[WaitingItem] = field(default_factory=list)

    @property
    def waiting_on_you(self) -> list[str]:
        """What waits on the person, as the lines the portfolio shows."""
        return [w.text for w in self.waiting]

    @property
    def stage_name(self) -> str:
        return STAGES[self.stage - 1]


@dataclass(frozen=True)
class DataState:
    """How far a project's data has come (counts from one grouped query each)."""

    datasets: int = 0
    holdout: bool = False
    teacher_runs: int = 0
    students: int = 0
    evaluation_id: int | None = None  # the latest evaluation of the open round
    evaluation_passed: bool | None = None
    sign_offs: int = 0  # on that evaluation
    decision: str | None = None  # the latest decision
    round: int = 1  # the open round
    redistill_id: int | None = None  # an operator's re-distillation request no import has answered yet
    rollout_stage: str = "off"
    teacher_running: bool = False  # a teacher-run job is queued or running: the teacher is not to be run again
    moved_at: datetime | None = None  # the newest of the rows above: when the project last moved


def _counts(session: Session, model, project_ids: list[int]) -> dict[int, int]:  # noqa: ANN001
    rows = session.exec(select(model.project_id, func.count()).where(model.project_id.in_(project_ids))
                        .group_by(model.project_id)).all()
    return dict(rows)


def _newest(session: Session, model, project_ids: list[int]) -> dict[int, datetime]:  # noqa: ANN001
    rows = session.exec(select(model.project_id, func.max(model.created_at)).where(model.project_id.in_(project_ids))
                        .group_by(model.project_id)).all()
    return {pid: _utc(at) for pid, at in rows}


def _latest_by_id(session: Session, model, project_ids: list[int]) -> dict[int, object]:  # noqa: ANN001
    newest = (select(func.max(model.id)).where(model.project_id.in_(project_ids)).group_by(model.project_id))
    return {r.project_id: r for r in session.exec(select(model).where(model.id.in_(newest))).all()}


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Stillroom writes is UTC.
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _data_states(session: Session, project_ids: list[int]) -> dict[int, DataState]:
    sets, holdouts = _counts(session, Dataset, project_ids), _counts(session, Holdout, project_ids)
    runs, students = _counts(session, TeacherRun, project_ids), _counts(session, TrainingRun, project_ids)
    evals = _latest_by_id(session, Evaluation, project_ids)
    decided = vouched.last_per_project(session, Decision, project_ids, order_by=col(Decision.id))
    redistill = _latest_by_id(session, RedistillRequest, project_ids)
    rollouts = vouched.last_per_project(session, RolloutEvent, project_ids, order_by=col(RolloutEvent.id))
    newest = [_newest(session, m, project_ids) for m in (Dataset, Holdout, TeacherRun, TrainingRun)]
    teaching = set(session.exec(select(Job.project_id).where(
        col(Job.project_id).in_(project_ids), col(Job.kind).in_(TEACHER_JOBS),
        col(Job.status).in_(("queued", "running")))).all())
    signed: dict[int, int] = {}
    signed_at: dict[int, datetime] = {}
    if evals:  # only sign-offs the audit chain vouches for count
        for eid, at in vouched.values(session, SignOff, SignOff.evaluation_id, SignOff.created_at,
                                      where=(col(SignOff.evaluation_id).in_([e.id for e in evals.values()]),)):
            signed[eid] = signed.get(eid, 0) + 1
            signed_at[eid] = max(signed_at.get(eid, _utc(at)), _utc(at))
    out = {}
    for pid in project_ids:
        d, e = decided.get(pid), evals.get(pid)
        open_round = (d.round + 1 if d.decision == "iterate" else d.round) if d else 1
        if e is not None and e.round != open_round:
            e = None  # an evaluation of an earlier round does not count for this one
        r = redistill.get(pid)
        newest_data = newest[0].get(pid)
        answered = r is not None and newest_data is not None and newest_data > _utc(r.created_at)
        times = [t.get(pid) for t in newest] + [signed_at.get(e.id) if e else None] + [
            _utc(row.created_at) for row in (e, d, r, rollouts.get(pid)) if row is not None]
        out[pid] = DataState(sets.get(pid, 0), bool(holdouts.get(pid)), runs.get(pid, 0), students.get(pid, 0),
                             e.id if e else None, e.passed if e else None, signed.get(e.id, 0) if e else 0,
                             d.decision if d else None, open_round, r.id if r and not answered else None,
                             rollouts[pid].stage if pid in rollouts else "off", pid in teaching,
                             max((t for t in times if t is not None), default=None))
    return out


def _rollout_words(stage: str) -> str:
    """"off", "in shadow", or "at 5 %": a stage as a person reads it."""
    return f"at {stage} %" if stage.isdigit() else "in shadow" if stage == SHADOW else stage


def _stage(q: Qualification | None, g: GateVersion | None, d: DataState = DataState()) -> tuple[int, str]:
    if q is None:
        return 1, "Trigger not qualified yet"
    if q.verdict != "proceed":
        return 1, f"Qualified: {q.verdict} (recommended {q.recommendation})"
    if g is None:
        return 2, "Qualified to proceed; gate not locked"
    gate_part = f"Gate v{g.version} locked"
    if d.decision in ("ship", "kill"):
        shipped = f"{'Shipped' if d.decision == 'ship' else 'Killed'} in round {d.round}"
        if d.decision == "ship":
            shipped += f"; rollout {_rollout_words(d.rollout_stage)}"
        if d.redistill_id:
            return 5, f"{shipped}; re-distillation requested (#{d.redistill_id})"
        return 5, shipped
    round_part = f"round {d.round}; " if d.round > 1 else ""
    if d.evaluation_id is not None:
        result = "passes the gate" if d.evaluation_passed else "fails the gate"
        if not d.sign_offs:
            return 4, f"{gate_part}; {round_part}evaluation #{d.evaluation_id} {result}, awaiting review"
        return 5, f"{gate_part}; {round_part}evaluation #{d.evaluation_id} {result}, signed off"
    if not d.datasets:
        return 3, f"{gate_part}; {round_part}no data yet"
    if not d.holdout:
        return 3, f"{gate_part}; {round_part}data imported, holdout not fixed"
    if not d.teacher_runs:
        teacher = "the teacher is running" if d.teacher_running else "no teacher outputs yet"
        return 3, f"{gate_part}; {round_part}holdout fixed, {teacher}"
    return 4, f"{gate_part}; {round_part}teacher outputs ready; {d.students} student(s) trained"


def _waiting(stage: int, mine: set[str], roles: dict[str, list[str]], is_admin: bool,
             d: DataState = DataState(), *, since: datetime, created: datetime | None = None) -> list[WaitingItem]:
    """What waits on a person holding ``mine`` on a project at ``stage``, each with the page that does it;
    ``since`` is when the project last moved, ``created`` when it was made (what an admin's missing roles wait
    since)."""
    todo: list[tuple[str, str, int | None]] = []
    if stage == 1 and Role.SPONSOR in mine:
        todo.append(("Qualify the trigger", "qualify", None))
    if stage == 2 and Role.SPONSOR in mine:
        todo.append(("Lock the success gate", "gate", None))
    if stage == 3 and Role.DRIVER in mine:
        if not d.datasets:
            todo.append(("Import production inputs", "import_data", None))
        elif not d.holdout:
            todo.append(("Fix the holdout", "coverage_holdout", None))
        elif not d.teacher_running:  # a run under way is not work waiting on the driver
            todo.append(("Run the teacher", "teacher", None))
    if stage == 4 and Role.DRIVER in mine and d.evaluation_id is None:
        todo.append(("Evaluate a student", "evaluate", None) if d.students else ("Train a student", "train", None))
    if stage == 4 and Role.VALIDATOR in mine and d.evaluation_id is not None:
        todo.append((f"Review evaluation #{d.evaluation_id}", "review", d.evaluation_id))
    if stage == 5 and Role.SPONSOR in mine and d.decision not in ("ship", "kill"):
        todo.append(("Decide: ship, iterate or kill", "decide", d.evaluation_id))
    if d.decision == "ship" and d.rollout_stage == "off" and Role.OPERATOR in mine:
        todo.append(("Start the rollout in shadow", "operate", None))
    if d.redistill_id and Role.DRIVER in mine:
        todo.append((f"Collect the data of re-distillation request #{d.redistill_id}", "import_data", None))
    items = [WaitingItem(text, page, since, evaluation_id) for text, page, evaluation_id in todo]
    if is_admin:
        missing = [r.value for r in Role if not roles.get(r.value)]
        if missing:
            items.append(WaitingItem("Assign " + ", ".join(missing), "admin", created or since))
    return items


def moved_at(project: Project, q: Qualification | None, g: GateVersion | None, d: DataState = DataState()) -> datetime:
    """When a project last moved: its newest qualification, gate, data, evaluation, sign-off, decision,
    rollout or re-distillation request, else its creation (what its waiting work waits since)."""
    times = [project.created_at, q.recorded_at if q else None, g.locked_at if g else None, d.moved_at]
    return max(_utc(t) for t in times if t is not None)


def portfolio(session: Session, *, user: User) -> list[ProjectStatus]:
    projects = projects_for(session, user=user)
    ids = [p.id for p in projects]
    if not ids:
        return []
    people = roster(session, project_ids=ids)
    quals = vouched.last_per_project(session, Qualification, ids, order_by=col(Qualification.version))
    gates = vouched.last_per_project(session, GateVersion, ids, order_by=col(GateVersion.version))
    data = _data_states(session, ids)
    mine: dict[int, set[str]] = {}
    for pid, role in vouched.values(session, RoleAssignment, RoleAssignment.project_id, RoleAssignment.role,
                                    where=(RoleAssignment.user_id == user.id,)):
        mine.setdefault(pid, set()).add(role)
    out = []
    for p in projects:
        q, g = quals.get(p.id), gates.get(p.id)
        stage, status = _stage(q, g, data[p.id])
        roles = {r: list(v) for r, v in people.get(p.id, {}).items()}
        out.append(ProjectStatus(
            project_id=p.id, name=p.name, stage=stage, status=status, roles=roles,
            qualification_verdict=q.verdict if q else None,
            payback_months=q.payback_months if q else None,
            gate_version=g.version if g else None,
            gate_hash=g.content_hash if g else None,
            waiting=_waiting(stage, mine.get(p.id, set()), roles, user.is_admin, data[p.id],
                             since=moved_at(p, q, g, data[p.id]), created=_utc(p.created_at)),
        ))
    return out


def landing_project(session: Session, *, user: User) -> int | None:
    """The project a person lands on after logging in: the one with their oldest waiting item; with nothing
    waiting, the furthest along (an empty project someone merely holds a role on is never the first thing they
    see, if another exists)."""
    rows = portfolio(session, user=user)
    if not rows:
        return None
    waiting = [(w.since, r.project_id) for r in rows for w in r.waiting]
    if waiting:
        return min(waiting)[1]
    return max(rows, key=lambda r: (r.stage, -r.project_id)).project_id
