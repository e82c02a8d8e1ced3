"""Step 5 of the playbook, the sponsor's part: ship, iterate or kill, on evidence that cannot be rewritten.

Ship is refused unless the evaluation passed every criterion under the current gate, a validator
approved that very evaluation's hash and a fallback threshold is proposed for it. Iterate opens the
next round with a data request aimed at the failing slices; after rounds without progress
Stillroom recommends kill and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.errors import GovernanceViolation, InvalidInput
from core.evaluation.runs import get_evaluation, list_evaluations, load_report
from core.governance import audit, gate, integrity, qualification, review
from core.governance.projects import require_role
from core.models import Decision, Evaluation, GateVersion, Project, Role, SignOff, ThresholdProposal, User

# A slice that fails its floor needs more training examples of its kind. Stated heuristic:
# ask for as many again as the holdout holds of it, and never fewer than this.
MIN_EXTRA_EXAMPLES = 100
# Gate metric -> the key of a slice's student figures in the report.
METRIC_KEYS = {"accuracy": "accuracy", "macro-f1": "macro_f1", "teacher-agreement": "agreement"}


class Choice(StrEnum):
    SHIP = "ship"
    ITERATE = "iterate"
    KILL = "kill"


# --------------------------------------------------------------------------- rounds


def decisions(session: Session, *, project_id: int) -> list[Decision]:
    """The project's decisions the audit chain vouches for (a row forged with raw SQL is not one)."""
    rows = list(session.exec(select(Decision).where(Decision.project_id == project_id)
                             .order_by(col(Decision.round))).all())
    return integrity.only_vouched(session, "decision", rows, project_ids=[project_id])


def current_round(session: Session, *, project_id: int) -> int:
    """The open round: 1, or one past the last iterate. A ship or kill closes the project on its round."""
    done = decisions(session, project_id=project_id)
    if not done:
        return 1
    last = done[-1]
    return last.round + 1 if last.decision == Choice.ITERATE else last.round


@dataclass(frozen=True)
class RoundSummary:
    round: int
    evaluation_id: int
    evaluation_hash: str
    passed: bool
    criteria: list[dict]
    decision: str | None


def rounds_history(session: Session, *, project_id: int) -> list[RoundSummary]:
    """Per round, its latest evaluation's criteria and the decision taken on it."""
    latest: dict[int, Evaluation] = {}
    for ev in list_evaluations(session, project_id=project_id):
        latest[ev.round] = ev
    decided = {d.round: d.decision for d in decisions(session, project_id=project_id)}
    return [RoundSummary(r, ev.id, ev.report_hash, ev.passed, list(ev.summary.get("criteria", [])), decided.get(r))
            for r, ev in sorted(latest.items())]


# --------------------------------------------------------------------------- kill recommendation


@dataclass(frozen=True)
class KillAdvice:
    reason: str
    stuck: list[str]


def _progress_measure(window: list[list[dict]], name: str) -> tuple[list[float], float] | None:
    """The criterion's values across the window (its sample size where a value is missing)."""
    found = [next((c for c in r if c.get("name") == name), None) for r in window]
    if any(c is None for c in found):
        return None
    if all(c.get("value") is not None for c in found):
        return [float(c["value"]) for c in found], 0.0
    return [float(c.get("n") or 0) for c in found], 1.0


def kill_recommendation(
    rounds: list[list[dict]], *, after_rounds: int | None = None, margin: float | None = None,
) -> KillAdvice | None:
    """Recommend kill when, over the last ``after_rounds`` rounds, no failing criterion moved by ``margin``.

    ``rounds`` holds each round's criteria (oldest first), as in the evaluation report. The defaults
    come from the settings (STILLROOM_KILL_AFTER_ROUNDS, STILLROOM_KILL_MARGIN).
    """
    from core.config import get_settings

    settings = get_settings()
    after_rounds = settings.kill_after_rounds if after_rounds is None else after_rounds
    margin = settings.kill_margin if margin is None else margin
    if after_rounds < 1 or len(rounds) < after_rounds:
        return None
    window = rounds[-after_rounds:]
    failing = [c["name"] for c in window[-1] if c.get("status") != "PASS"]
    if not failing:
        return None
    described = []
    for name in failing:
        measure = _progress_measure(window, name)
        if measure is None:
            return None  # a criterion new to the window: too soon to judge it
        values, floor_margin = measure
        if max(values) - min(values) >= max(margin, floor_margin):
            return None
        described.append(f"{name} went from {values[0]:.4g} to {values[-1]:.4g}")
    reason = (f"Over the last {after_rounds} rounds no failing criterion moved by {margin:g} or more "
              f"({'; '.join(described)}): more rounds are unlikely to pass the gate, so Stillroom recommends kill.")
    return KillAdvice(reason=reason, stuck=failing)


# --------------------------------------------------------------------------- data request


def data_request(spec: dict, report: dict, *, round_: int) -> dict:
    """Which slices need more examples and how many: for INSUFFICIENT DATA the holdout's shortfall
    (min_n - n); for a FAIL as many again as the holdout holds of the slice, at least MIN_EXTRA_EXAMPLES."""
    key = METRIC_KEYS.get(spec.get("metric", "accuracy"), "accuracy")
    by_slice = {(s["column"], str(s["value"])): s for s in report.get("slices", [])}
    wanted = []
    for f in spec.get("slice_floors", []):
        s = by_slice.get((f["column"], f["value"]))
        n = int(s["n"]) if s else 0
        value = (s or {}).get("student", {}).get(key)
        if n < f["min_n"]:
            wanted.append({"column": f["column"], "value": f["value"], "status": "INSUFFICIENT DATA", "n": n,
                           "more_examples": f["min_n"] - n, "for": "holdout",
                           "why": f"the holdout has {n} of the {f['min_n']} examples the gate needs to judge it"})
        elif value is not None and value < f["floor"]:
            wanted.append({"column": f["column"], "value": f["value"], "status": "FAIL", "n": n,
                           "more_examples": max(MIN_EXTRA_EXAMPLES, n), "for": "training",
                           "why": f"{key} {value:.3f} is under the floor {f['floor']:.3f}"})
    failing = [c["name"] for c in report.get("criteria", []) if c.get("status") != "PASS"]
    return {"round": round_, "next_round": round_ + 1, "slices": wanted, "failing_criteria": failing}


# --------------------------------------------------------------------------- evidence and decision


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    target: float | None
    met: bool | None  # None when a figure is missing


@dataclass(frozen=True)
class Evidence:
    project: Project
    round: int
    evaluation: Evaluation | None
    criteria: list[dict]
    passed: bool
    sign_offs: list[SignOff]
    threshold: ThresholdProposal | None
    targets: list[Target]
    payback_months: float | None
    rounds: list[RoundSummary]
    kill: KillAdvice | None
    ship_blockers: list[str] = field(default_factory=list)


def _targets(spec: dict, report: dict, payback: float | None) -> list[Target]:
    def under(name: str, value: float | None, target: float | None) -> Target:
        met = None if value is None or target is None else value <= target
        return Target(name, value, target, met)

    return [
        under("p95 latency (ms)", report.get("latency", {}).get("student", {}).get("p95_ms"),
              spec.get("p95_latency_ms")),
        under("cost per 1,000 requests", report.get("cost", {}).get("student_per_1k"), spec.get("cost_per_1k")),
        under("payback (months)", payback, spec.get("payback_months")),
    ]


def ship_blockers(session: Session, *, project: Project, evaluation: Evaluation, report: dict) -> list[str]:
    """Every reason this evaluation cannot ship, each a clause of one sentence."""
    out = []
    current = gate.current(session, project_id=project.id)
    if current is not None and current.id != evaluation.gate_version_id:
        out.append(f"it was evaluated under a gate since superseded by version {current.version}")
    not_passed = [f"{c['name']} ({c['status']})" for c in report.get("criteria", []) if c.get("status") != "PASS"]
    if not_passed:
        out.append("criteria not passed: " + ", ".join(not_passed))
    elif not (report.get("passed") and evaluation.passed):
        out.append("its report does not say it passed")
    # Each validator's latest word on this very hash counts: a later rejection withdraws an approval.
    latest = {s.validator_id: s for s in review.sign_offs(session, evaluation_id=evaluation.id)
              if s.evaluation_hash == evaluation.report_hash}
    if not any(s.approve for s in latest.values()):
        out.append(f"no validator has approved this evaluation (hash {evaluation.report_hash[:16]})")
    rejected = [s for s in latest.values() if not s.approve]
    if rejected:
        out.append(f"{len(rejected)} validator(s) rejected it, the last saying {rejected[-1].comment!r}")
    if not review.threshold_proposals(session, evaluation_id=evaluation.id):
        out.append("no fallback threshold has been proposed for it")
    return out


def evidence(session: Session, *, project: Project) -> Evidence:
    """What the sponsor decides on: the latest evaluation and everything said about it."""
    spec = gate.spec_of(g) if (g := gate.current(session, project_id=project.id)) else {}
    q = qualification.latest(session, project_id=project.id)
    payback = q.payback_months if q else None
    history = rounds_history(session, project_id=project.id)
    kill = kill_recommendation([r.criteria for r in history])
    evs = list_evaluations(session, project_id=project.id)
    rnd = current_round(session, project_id=project.id)
    if not evs:
        return Evidence(project, rnd, None, [], False, [], None, _targets(spec, {}, payback), payback,
                        history, kill, ["no evaluation has been run"])
    ev = evs[-1]
    report = load_report(session, ev)
    proposals = review.threshold_proposals(session, evaluation_id=ev.id)
    return Evidence(
        project=project, round=rnd, evaluation=ev, criteria=report.get("criteria", []),
        passed=bool(report.get("passed")), sign_offs=review.sign_offs(session, evaluation_id=ev.id),
        threshold=proposals[-1] if proposals else None, targets=_targets(spec, report, payback),
        payback_months=payback, rounds=history, kill=kill,
        ship_blockers=ship_blockers(session, project=project, evaluation=ev, report=report),
    )


def decide(
    session: Session, *, actor: User, project: Project, decision: str, rationale: str,
    evaluation_id: int | None = None,
) -> Decision:
    """Record the sponsor's ship, iterate or kill for the open round."""
    require_role(session, actor=actor, project=project, role=Role.SPONSOR, doing="decide ship, iterate or kill")
    try:
        choice = Choice((decision or "").strip().lower())
    except ValueError:
        raise InvalidInput(f"decision {decision!r} is not one of ship, iterate, kill.", field="decision") from None
    rationale = (rationale or "").strip()
    if not rationale:
        raise InvalidInput("the decision needs a rationale: say why, in a sentence.", field="rationale")
    rnd = current_round(session, project_id=project.id)
    closed = [d for d in decisions(session, project_id=project.id) if d.decision != Choice.ITERATE]
    if closed:
        raise GovernanceViolation(
            f"Project {project.name!r} was decided {closed[-1].decision} in round {closed[-1].round}: "
            "that decision is final."
        )
    evaluation, report = None, {}
    if evaluation_id is None:
        if choice != Choice.KILL:
            raise InvalidInput(f"to {choice.value}, name the evaluation you decide on (--evaluation ID).",
                               field="evaluation")
    else:
        evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
        integrity.require_vouched(session, "evaluation", evaluation)
        integrity.require_gate_intact(session, session.get(GateVersion, evaluation.gate_version_id))
        if evaluation.round != rnd:
            raise GovernanceViolation(
                f"Evaluation #{evaluation.id} belongs to round {evaluation.round} but round {rnd} is open: "
                "decide on an evaluation of this round."
            )
        report = load_report(session, evaluation)
    if choice == Choice.SHIP:
        blockers = ship_blockers(session, project=project, evaluation=evaluation, report=report)
        if blockers:
            raise GovernanceViolation(f"Ship refused for evaluation #{evaluation.id}: {'; '.join(blockers)}.")
    spec = review._gate_spec(session, evaluation) if evaluation else {}
    request = data_request(spec, report, round_=rnd) if choice == Choice.ITERATE else {}
    return _insert(session, actor=actor, project=project, row=Decision(
        project_id=project.id, round=rnd, decision=choice.value, rationale=rationale,
        evaluation_id=evaluation.id if evaluation else None,
        evaluation_hash=evaluation.report_hash if evaluation else None, data_request=request, created_by=actor.id))


def _insert(session: Session, *, actor: User, project: Project, row: Decision) -> Decision:
    try:
        session.add(row)
        session.flush()
    except IntegrityError:  # a concurrent decision took this round first
        session.rollback()
        raise GovernanceViolation(
            f"Round {row.round} of project {project.name!r} is already decided: one decision per round."
        ) from None
    audit.record(session, actor=actor, action="decision.record", entity="decision", entity_id=row.id,
                 project_id=project.id, payload={"round": row.round, "decision": row.decision,
                                                 "rationale": row.rationale, "evaluation_id": row.evaluation_id,
                                                 "evaluation_hash": row.evaluation_hash,
                                                 "data_request": row.data_request})
    session.commit()
    return row
