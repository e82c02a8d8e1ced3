"""The staged rollout of a shipped student: shadow first, then growing shares of traffic, each step the
operator's and recorded; advancing is refused unless the current stage's logged traffic meets the criteria.

The current stage is the latest RolloutEvent's (append-only); "off" before any event or after a rollback to off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from sqlmodel import Session, col

from core.access.projects import require_role
from core.domain.criteria import FAIL, NOT_APPLICABLE, PASS, WAITING, Criterion, meets, proportion
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.roles import Role
from core.domain.rollout_state import DEFAULT_FALLBACK_THRESHOLD, OFF, SHADOW, RolloutState
from core.evaluation import rounds
from core.notify.inbox import notice, notify
from core.notify.rules import Kind
from core.review import review
from core.rollout import config, fallback, logs
from core.store import audit, vouched
from core.store.models import Evaluation, GateVersion, Project, RolloutEvent, User


@dataclass(frozen=True)
class AdvanceCheck:
    stage: str
    next_stage: str | None
    n_requests: int
    criteria: list[Criterion]

    @property
    def passed(self) -> bool:
        return all(c.status in (PASS, NOT_APPLICABLE) for c in self.criteria)

    def as_dict(self) -> dict:
        return {"stage": self.stage, "next_stage": self.next_stage, "n_requests": self.n_requests,
                "passed": self.passed, "criteria": [c.as_dict() for c in self.criteria]}


# --------------------------------------------------------------------------- reading


def history(session: Session, *, project_id: int) -> list[RolloutEvent]:
    """The project's rollout steps the audit chain vouches for, oldest first."""
    return vouched.rows(session, RolloutEvent, RolloutEvent.project_id == project_id, order_by=col(RolloutEvent.id))


def _last(session: Session, project_id: int) -> RolloutEvent | None:
    """The newest rollout event the audit chain vouches for: a stage INSERTed with raw SQL does not route traffic."""
    return vouched.first(session, RolloutEvent, RolloutEvent.project_id == project_id,
                         order_by=col(RolloutEvent.id).desc())


def current_stage(session: Session, *, project_id: int) -> str:
    last = _last(session, project_id)
    return last.stage if last else OFF


def stages(session: Session, *, project_id: int) -> list[str]:
    return config.get_config(session, project_id=project_id).stages


def state(session: Session, *, project_id: int) -> RolloutState:
    """The state serving obeys, from the newest rollout event the audit chain vouches for."""
    settings = config.get_config(session, project_id=project_id)
    last = _last(session, project_id)
    return RolloutState(
        stage=last.stage if last else OFF,
        threshold=float(last.threshold) if last and last.threshold is not None else DEFAULT_FALLBACK_THRESHOLD,
        must_escalate=config.must_escalate(session, project_id=project_id, settings=settings),
        teacher_sample_rate=settings.teacher_sample_rate,
        training_run_id=last.training_run_id if last else None, evaluation_id=last.evaluation_id if last else None,
        fallback=fallback.QUEUE if _fallback_of(session, project_id, last) == fallback.QUEUE else "teacher",
    )


def _fallback_of(session: Session, project_id: int, last: RolloutEvent | None) -> str | None:
    target = fallback.of_run(session, project_id=project_id, training_run_id=last.training_run_id) if last else None
    return target.kind if target else None


def fallback_target(session: Session, *, project_id: int) -> fallback.Fallback | None:
    """The fallback of the student in rollout, else of the one its sponsor last decided to ship (None: no trained
    student to serve yet)."""
    last = _last(session, project_id)
    if last is not None and last.training_run_id is not None:
        return fallback.of_run(session, project_id=project_id, training_run_id=last.training_run_id)
    done = rounds.decisions(session, project_id=project_id)
    if done and done[-1].decision == rounds.Choice.SHIP:
        return fallback.of_evaluation(session, evaluation_id=done[-1].evaluation_id)
    return None


# --------------------------------------------------------------------------- criteria


def actions(stage: str, order: list[str]) -> list[str]:
    """What the operator can do from ``stage``: start from off; advance (unless at the last stage) or roll back."""
    if stage == OFF:
        return ["start"]
    return (["advance"] if stage in order[:-1] else []) + ["rollback"]


def _criterion(name: str, value: float | None, threshold: float, n: int, *, at_most: bool = False,
               detail: str = "", unit: str = "proportion") -> Criterion:
    how = {"direction": "lower" if at_most else "higher", "unit": unit}
    if value is None and n == 0:
        return Criterion(name, WAITING, None, threshold, 0, "waiting for traffic", **how)
    if value is None:
        return Criterion(name, FAIL, None, threshold, n, detail or "no measurement", **how)
    ok = meets(value, threshold, at_most=at_most)
    return Criterion(name, PASS if ok else FAIL, round(float(value), 6), threshold, n, detail, **how)


def _requests(n: int, needed: int, stage: str) -> Criterion:
    if n >= needed:
        return Criterion("requests", PASS, float(n), float(needed), n, f"logged at stage {stage}", unit="count")
    return Criterion("requests", WAITING, float(n), float(needed), n,
                     f"waiting for traffic: {n:,} of {needed:,} requests logged at stage {stage}", unit="count")


def _latency(session: Session, project_id: int, traffic: pd.DataFrame) -> Criterion:
    target = config.p95_target(session, project_id=project_id)
    by_student = traffic.loc[traffic["served_by"] == "student", "latency_ms"].dropna()
    if target is None:
        return Criterion("p95 latency (ms)", NOT_APPLICABLE, None, None, len(by_student), "the gate sets no p95 target")
    if by_student.empty:
        return Criterion("p95 latency (ms)", NOT_APPLICABLE, None, float(target), 0,
                         "no request was served by the student at this stage (the teacher serves in shadow)")
    return _criterion("p95 latency (ms)", float(by_student.quantile(0.95)), float(target), len(by_student),
                      at_most=True, detail="requests served by the student", unit="ms")


def stage_traffic(session: Session, *, project_id: int, live: pd.DataFrame | None = None) -> pd.DataFrame:
    """The logged requests of the current stage, since it began (from ``live`` when the caller read the log)."""
    last = _last(session, project_id)
    df = logs.read_requests(project_id) if live is None else live
    if last is None or last.stage == OFF:
        return df.iloc[0:0]
    return df[(df["ts"] >= logs.as_utc(last.created_at)) & (df["stage"] == last.stage)]


def check_advance(session: Session, *, project_id: int, live: pd.DataFrame | None = None) -> AdvanceCheck:
    """The advance criteria, with their numbers, from the current stage's logged traffic."""
    settings = config.get_config(session, project_id=project_id)
    last = _last(session, project_id)
    stage = last.stage if last else OFF
    order = settings.stages
    nxt = order[order.index(stage) + 1] if stage in order[:-1] else None
    traffic = stage_traffic(session, project_id=project_id, live=live)
    floor = config.agreement_floor(session, project_id=project_id, settings=settings)
    threshold = last.threshold if last and last.threshold is not None else None
    n_asked = len(logs.asked(traffic))
    queue = _fallback_of(session, project_id, last) == fallback.QUEUE
    criteria = [
        _requests(len(traffic), settings.min_requests, stage),
        _no_live_teacher(floor) if queue else _criterion(
            "student-teacher agreement", logs.agreement(traffic), floor, n_asked,
            detail="on requests the teacher also answered"),
        _criterion("fallback rate", logs.fallback_rate(
            traffic, threshold=threshold, must_escalate=config.must_escalate(
                session, project_id=project_id, settings=settings)),
            settings.max_fallback_rate, len(traffic), at_most=True,
            detail="under the threshold or a must-escalate label"),
        _latency(session, project_id, traffic),
    ]
    criteria += [] if queue else slice_criteria(traffic, floor=floor, min_n=settings.min_slice_requests)
    return _told(session, last, AdvanceCheck(stage=stage, next_stage=nxt, n_requests=len(traffic), criteria=criteria))


def _no_live_teacher(floor: float) -> Criterion:
    """Agreement cannot be measured where a person's queue is the fallback: nothing answers live beside the
    student (the gate judged it against its file teacher before the ship decision)."""
    return Criterion("student-teacher agreement", NOT_APPLICABLE, None, floor, 0,
                     "not measured live: the fallback is a person's queue, so no teacher answers beside the student",
                     direction="higher", unit="proportion")


def _told(session: Session, last: RolloutEvent | None, check: AdvanceCheck) -> AdvanceCheck:
    """The check, its operators told once per stage when it became ready to advance or fails a criterion."""
    failing = [c for c in check.criteria if c.status == FAIL]
    if last is not None and check.next_stage is not None and (check.passed or failing):
        outcome = "ready" if check.passed else "refused"
        notice(session, kind=Kind.ROLLOUT_READY if check.passed else Kind.ROLLOUT_REFUSED,
               project_id=last.project_id, dedupe=f"rollout:{last.id}:{outcome}",
               detail=f"{check.stage} ({check.n_requests:,} requests)" if check.passed
               else f"at {check.stage}, " + "; ".join(_describe(c) for c in failing))
    return check


def slice_criteria(traffic: pd.DataFrame, *, floor: float, min_n: int) -> list[Criterion]:
    """Each slice's agreement on the stage's teacher-asked requests, judged by the gate's rule for a slice
    (``criteria.proportion``: a minimum n, the point estimate against the floor, its Wilson interval shown).
    A slice short of ``min_n`` is listed as not judged (N/A), so a rare slice neither blocks nor hides."""
    out = []
    for row in logs.slice_agreement(traffic).itertuples():
        asked = int(row.asked)
        k = int(round(float(row.agreement) * asked)) if asked else 0
        c = proportion(f"agreement {row.column}={row.value}", k=k, n=asked, threshold=floor, min_n=min_n,
                       what=f"the student agreed with the teacher on slice {row.column}={row.value}",
                       short=NOT_APPLICABLE)
        out.append(replace(c, slice_column=str(row.column), slice_value=str(row.value)))
    return out


# --------------------------------------------------------------------------- operator's steps


def _record(session: Session, *, actor: User, project: Project, action: str, stage: str, reason: str,
            criteria: dict | None = None, basis: RolloutEvent | None = None, evaluation: Evaluation | None = None,
            threshold: float | None = None) -> RolloutEvent:
    row = RolloutEvent(
        project_id=project.id, action=action, stage=stage, reason=reason, criteria=criteria or {},
        evaluation_id=evaluation.id if evaluation else basis.evaluation_id,
        training_run_id=evaluation.training_run_id if evaluation else basis.training_run_id,
        threshold=threshold if evaluation else basis.threshold, created_by=actor.id,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action=f"rollout.{action}", entity="rollout_event", entity_id=row.id,
                 project_id=project.id, payload={"stage": stage, "reason": reason, "criteria": row.criteria,
                                                 "evaluation_id": row.evaluation_id,
                                                 "training_run_id": row.training_run_id,
                                                 "threshold": row.threshold})
    notify(session, kind=Kind.ROLLOUT_MOVED, project_id=project.id, actor=actor, evaluation_id=row.evaluation_id,
           detail=_moved(action, project=project, stage=stage, criteria=row.criteria, reason=row.reason))
    session.commit()
    return row


def _moved(action: str, *, project: Project, stage: str, criteria: dict, reason: str) -> str:
    """What a rollout step did, in words: "rolled back the rollout of X from canary-5 to off (reason: …)"."""
    verb = {"start": f"started the rollout of {project.name} in {stage}",
            "advance": f"advanced the rollout of {project.name} to {stage}",
            "rollback": f"rolled back the rollout of {project.name} from {criteria.get('from', '?')} to {stage}"}
    said = verb.get(action, f"moved the rollout of {project.name} to {stage}")
    return said + (f" (reason: {reason})" if reason else "")


def _intact(session: Session, evaluation: Evaluation) -> Evaluation:
    """The evaluation a rollout serves, refused when it or its gate no longer match the audit chain."""
    vouched.require(session, evaluation)
    vouched.one(session, GateVersion, evaluation.gate_version_id)
    return evaluation


def _require_operator(session: Session, actor: User, project: Project, doing: str) -> None:
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing=doing)


def start(session: Session, *, actor: User, project: Project, reason: str = "") -> RolloutEvent:
    """Begin in shadow with the shipped evaluation's student and its threshold in force."""
    _require_operator(session, actor, project, "start a rollout")
    stage = current_stage(session, project_id=project.id)
    if stage != OFF:
        raise GovernanceViolation(f"The rollout of project {project.name!r} is already at stage {stage}: "
                                  "advance it or roll it back to off first.")
    done = rounds.decisions(session, project_id=project.id)
    if not done or done[-1].decision != rounds.Choice.SHIP:
        last = f"its last decision is {done[-1].decision}" if done else "no decision has been taken"
        raise GovernanceViolation(f"Project {project.name!r} cannot roll out: {last}; only a project its sponsor "
                                  "decided to ship can start.")
    evaluation = _intact(session, session.get(Evaluation, done[-1].evaluation_id))
    fallback.require_ready(fallback.of_evaluation(session, evaluation_id=evaluation.id), project=project,
                           doing="start its rollout")
    proposals = review.threshold_proposals(session, evaluation_id=evaluation.id)
    if not proposals:
        raise GovernanceViolation(f"Evaluation #{evaluation.id} has no fallback threshold: a validator or operator "
                                  "proposes one with `stillroom review threshold` before the rollout starts.")
    return _record(session, actor=actor, project=project, action="start", stage=SHADOW,
                   reason=(reason or "").strip(), evaluation=evaluation, threshold=proposals[-1].threshold)


def advance(session: Session, *, actor: User, project: Project, reason: str = "") -> RolloutEvent:
    """Move to the next stage only, and only when the current stage's traffic meets every criterion."""
    _require_operator(session, actor, project, "advance a rollout")
    last = _last(session, project.id)
    if last is not None and last.evaluation_id is not None:
        _intact(session, session.get(Evaluation, last.evaluation_id))
    check = check_advance(session, project_id=project.id)
    if check.stage == OFF:
        raise GovernanceViolation(f"The rollout of project {project.name!r} has not started: start it in shadow.")
    if check.next_stage is None:
        raise GovernanceViolation(f"The rollout of project {project.name!r} is at {check.stage}, its last stage: "
                                  "there is nothing to advance to.")
    if not check.passed:
        failing = "; ".join(_describe(c) for c in check.criteria if c.status in (FAIL, WAITING))
        raise GovernanceViolation(f"Advance from {check.stage} to {check.next_stage} refused: {failing}; "
                                  "let more traffic through this stage or roll back.")
    return _record(session, actor=actor, project=project, action="advance", stage=check.next_stage,
                   reason=(reason or "").strip(), criteria=check.as_dict(), basis=_last(session, project.id))


def _describe(c: Criterion) -> str:
    if c.status == WAITING:
        return f"{c.name}: {c.detail}"
    value = "no measurement" if c.value is None else f"{c.value:.4g}"
    return f"{c.name} {value} vs {c.threshold:g} (n={c.n})"


def rollback(session: Session, *, actor: User, project: Project, reason: str, to: str = OFF) -> RolloutEvent:
    """From any stage back to off, or to the previous stage (shadow goes back to off); a reason is required."""
    _require_operator(session, actor, project, "roll back a rollout")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a rollback needs a reason: say what went wrong, in a sentence.", field="reason")
    if to not in (OFF, "previous"):
        raise InvalidInput(f"rollback target {to!r} is not off or previous.", field="to")
    last = _last(session, project.id)
    if last is None or last.stage == OFF:
        raise GovernanceViolation(f"The rollout of project {project.name!r} is off: there is nothing to roll back.")
    order = stages(session, project_id=project.id)
    target = OFF
    if to == "previous" and last.stage in order and order.index(last.stage) > 0:
        target = order[order.index(last.stage) - 1]
    return _record(session, actor=actor, project=project, action="rollback", stage=target, reason=reason,
                   criteria={"from": last.stage}, basis=last)
