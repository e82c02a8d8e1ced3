"""Step 5 of the playbook, the sponsor's part: ship, iterate or kill, on evidence that cannot be rewritten.

Ship is refused unless the evaluation passed every criterion under the current gate, a validator
approved that very evaluation's hash and a fallback threshold is proposed for it. Iterate opens the
next round with a data request aimed at the failing slices; after rounds without progress
Stillroom recommends kill and says why. A decision closes its round: no evaluation joins a decided round,
every view of it shows the evaluation the decision named, and after ship or kill (final) none is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.access.projects import require_role
from core.domain import economics
from core.domain.criteria import Criterion
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.gate_spec import GateSpec
from core.domain.metrics import wilson
from core.domain.report import EvaluationReport
from core.domain.requests import DataRequest, SliceWanted
from core.domain.roles import Role
from core.domain.stored import stored_json
from core.evaluation import gate_check
from core.evaluation.rounds import Choice, closing_decision, current_round, decided_on, decisions
from core.evaluation.runs import get_evaluation, list_evaluations, load_report
from core.gate import gate
from core.notify.inbox import notify
from core.notify.rules import Kind
from core.qualify import qualification
from core.review import review
from core.store import audit, vouched
from core.store.config import get_settings
from core.store.models import Decision, Evaluation, GateVersion, Project, SignOff, ThresholdProposal, User

# A slice that fails its floor needs more training examples of its kind. Stated heuristic:
# ask for as many again as the holdout holds of it, and never fewer than this.
MIN_EXTRA_EXAMPLES = 100


def _shown(evaluations: list[Evaluation], done: list[Decision]) -> dict[int, Evaluation]:
    """Per round, the evaluation every view of it shows: the one its decision names, else (an open round, or a
    kill that named none) the round's newest."""
    shown = {ev.round: ev for ev in evaluations}  # ordered by id: the newest of each round wins
    by_id = {ev.id: ev for ev in evaluations}
    for d in done:
        if d.evaluation_id in by_id:
            shown[d.round] = by_id[d.evaluation_id]
    return shown


def evaluation_in_view(session: Session, *, project_id: int) -> Evaluation | None:
    """The evaluation the Decide page and the record speak of: the one the closing ship or kill named (None when
    a kill named none), else the newest of the open round (None when the open round has none yet)."""
    closing = closing_decision(session, project_id=project_id)
    if closing is not None:
        return None if closing.evaluation_id is None else session.get(Evaluation, closing.evaluation_id)
    rnd = current_round(session, project_id=project_id)
    return next((ev for ev in reversed(list_evaluations(session, project_id=project_id)) if ev.round == rnd), None)


@dataclass(frozen=True)
class RoundSummary:
    round: int
    evaluation_id: int
    evaluation_hash: str
    passed: bool
    criteria: list[dict]
    decision: str | None


def rounds_history(session: Session, *, project_id: int) -> list[RoundSummary]:
    """Per round, the evaluation its decision named (the newest, for a round still open) and the decision."""
    done = decisions(session, project_id=project_id)
    shown = _shown(list_evaluations(session, project_id=project_id), done)
    decided = {d.round: d.decision for d in done}
    return [RoundSummary(r, ev.id, ev.report_hash, ev.passed, list(ev.summary.get("criteria", [])), decided.get(r))
            for r, ev in sorted(shown.items())]


# --------------------------------------------------------------------------- kill recommendation


@dataclass(frozen=True)
class KillAdvice:
    reason: str
    stuck: list[str]


@dataclass(frozen=True)
class Margins:
    """The smallest improvement that counts as progress, each in its criterion's own unit."""

    points: float  # accuracy-type criteria (proportions), in points: 1.0 = 0.01
    ms: float  # p95 latency
    cost: float  # cost per 1,000 requests

    @classmethod
    def from_settings(cls) -> Margins:
        s = get_settings()
        return cls(points=s.kill_margin_points, ms=s.kill_margin_ms, cost=s.kill_margin_cost)

    def of(self, unit: str) -> float:
        return {"ms": self.ms, "cost": self.cost}.get(unit, self.points / 100.0)


def _kind(c: dict) -> tuple[str, str]:
    """(direction, unit) of a criterion: which way is better, in what unit. Reports written before criteria
    carried both are read from the criterion's name."""
    if c.get("direction") and c.get("unit"):
        return c["direction"], c["unit"]
    name = str(c.get("name", "")).lower()
    if name.startswith("p95"):
        return "lower", "ms"
    if name.startswith("cost"):
        return "lower", "cost"
    return ("lower", "proportion") if "severe" in name else ("higher", "proportion")


def _fmt_gain(x: float, unit: str) -> str:
    return {"ms": f"{x:.3g} ms", "cost": f"{x:.3g}"}.get(unit, f"{100 * x:.2g} points")


def _movement(first: dict, last: dict, margins: Margins) -> tuple[bool, str]:
    """Did the criterion improve from ``first`` to ``last`` beyond its margin and the noise of its estimate?
    A criterion that got worse never counts as progress. With the sentence that says why."""
    name = last.get("name")
    if last.get("status") == "INSUFFICIENT DATA" or first.get("value") is None or last.get("value") is None:
        a, b = int(first.get("n") or 0), int(last.get("n") or 0)  # judged by the holdout examples it gained
        return b > a, f"{name} had {a} then {b} scored holdout examples"
    direction, unit = _kind(last)
    a, b = float(first["value"]), float(last["value"])
    gain = (b - a) if direction == "higher" else (a - b)
    said = f"{name} went from {a:.4g} to {b:.4g}"
    if gain <= 0:
        return False, said + (" (worse)" if gain < 0 else "")
    if gain < margins.of(unit):
        return False, f"{said} (under the margin of {_fmt_gain(margins.of(unit), unit)})"
    n_a, n_b = int(first.get("n") or 0), int(last.get("n") or 0)
    if unit == "proportion" and n_a and n_b:
        (lo_a,), (hi_a,) = wilson([a * n_a], [n_a])
        (lo_b,), (hi_b,) = wilson([b * n_b], [n_b])
        if lo_b <= hi_a and lo_a <= hi_b:  # the 95 % intervals overlap: the change may be sampling noise
            return False, f"{said} (within the noise: 95 % intervals overlap on n={n_a} and n={n_b})"
    return True, said


def kill_recommendation(
    rounds: list[list[dict]], *, after_rounds: int | None = None, margins: Margins | None = None,
) -> KillAdvice | None:
    """Recommend kill when, over the last ``after_rounds`` rounds, no failing criterion made progress.

    Progress means the latest round is better than the window's first by at least the criterion's margin in
    its own unit (``Margins``: accuracy points, milliseconds, cost) and, for a proportion measured on n
    examples, beyond sampling noise (the two rounds' Wilson 95 % intervals do not overlap). A criterion that
    got worse is never progress. A criterion with too few examples progresses when its scored examples grow.
    ``rounds`` holds each round's criteria (oldest first), as in the evaluation report; the defaults come
    from the settings (STILLROOM_KILL_AFTER_ROUNDS, STILLROOM_KILL_MARGIN_POINTS, _MS, _COST).
    """
    after_rounds = get_settings().kill_after_rounds if after_rounds is None else after_rounds
    margins = Margins.from_settings() if margins is None else margins
    if after_rounds < 1 or len(rounds) < after_rounds:
        return None
    window = rounds[-after_rounds:]
    failing = [c for c in window[-1] if c.get("status") != "PASS"]
    if not failing:
        return None
    described = []
    for last in failing:
        first = next((c for c in window[0] if c.get("name") == last.get("name")), None)
        if first is None:
            return None  # a criterion new to the window: too soon to judge it
        moved, said = _movement(first, last, margins)
        if moved:
            return None
        described.append(said)
    reason = (f"Over the last {after_rounds} rounds no failing criterion improved beyond its margin and the noise "
              f"of its estimate ({'; '.join(described)}): more rounds are unlikely to pass the gate, so Stillroom "
              "recommends kill.")
    return KillAdvice(reason=reason, stuck=[c["name"] for c in failing])


# --------------------------------------------------------------------------- data request


def data_request(spec: GateSpec, report: EvaluationReport, *, round_: int) -> DataRequest:
    """Which slices need more examples, read from the gate check's verdict on each slice floor with the one
    sufficiency rule (``gate_check.slice_sufficient``): too few scored holdout examples asks for HOLDOUT
    examples (the shortfall, min_n - n); a slice under its floor asks for training examples (as many again as
    the holdout holds of it, at least MIN_EXTRA_EXAMPLES)."""
    wanted: list[SliceWanted] = []
    for f in spec.slice_floors:
        c = report.slice_criterion(f.column, f.value)
        n = int(c.n or 0) if c else 0
        value = c.value if c else None
        where = {"column": f.column, "value": f.value, "n": n}
        if not gate_check.slice_sufficient(n, f.min_n):
            wanted.append(SliceWanted(**where, status=gate_check.INSUFFICIENT, more_examples=f.min_n - n,
                                      for_="holdout",
                                      why=f"the holdout has {n} scored examples of the {f.min_n} the gate needs "
                                          "to judge it: add them to the holdout, not to the training data"))
        elif (c is not None and c.status == gate_check.FAIL) or (value is not None and value < f.floor):
            wanted.append(SliceWanted(**where, status=gate_check.FAIL, more_examples=max(MIN_EXTRA_EXAMPLES, n),
                                      for_="training",
                                      why=f"{'n/a' if value is None else f'{value:.3f}'} is under the floor "
                                          f"{f.floor:.3f}"))
    wanted += _severe_wanted(spec, report)
    failing = [c.name for c in report.failing]
    return DataRequest(round=round_, next_round=round_ + 1, slices=wanted, failing_criteria=failing)


def _severe_wanted(spec: GateSpec, report: EvaluationReport) -> list[SliceWanted]:
    """A failing severe-class criterion is something the driver can act on too: examples whose reference is a
    severe class, for training when the student misses them (as many again as the holdout holds, at least
    MIN_EXTRA_EXAMPLES in all), for the holdout when it holds too few to judge the miss rate (the shortfall)."""
    rule = spec.severe_errors
    c = next((c for c in report.criteria if c.name == gate_check.SEVERE), None)
    if not rule.classes or c is None or c.status == gate_check.PASS:
        return []
    n, share = int(c.n or 0), len(rule.classes)
    if not gate_check.slice_sufficient(n, rule.min_n):
        each, for_ = -(-(rule.min_n - n) // share), "holdout"
        why = (f"the holdout has {n} items whose truth is a severe class, of the {rule.min_n} the gate needs to "
               "judge the miss rate: add items with this reference to the holdout")
    else:
        each, for_ = -(-max(MIN_EXTRA_EXAMPLES, n) // share), "training"
        why = (f"the student missed {c.value:.3f} of the severe items against a ceiling of {rule.max_rate:g}: "
               "add training inputs whose reference is this class")
    return [SliceWanted(column="reference", value=cls, n=n, status=c.status, more_examples=max(1, each),
                        for_=for_, why=why) for cls in rule.classes]


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
    criteria: list[Criterion]
    passed: bool
    sign_offs: list[SignOff]
    threshold: ThresholdProposal | None
    targets: list[Target]
    payback_months: float | None
    rounds: list[RoundSummary]
    kill: KillAdvice | None
    ship_blockers: list[str] = field(default_factory=list)
    payback: Payback | None = None  # recomputed for the evaluation in view at its proposed threshold
    closed_by: Decision | None = None  # the ship or kill that closed the project: its decision is final


@dataclass(frozen=True)
class Payback:
    """Payback recomputed at decision time from what was measured and proposed, judged against the gate."""

    months: float | None
    blended_per_1k: float | None  # the student's measured cost on the share it serves, the teacher's on the rest
    monthly_saving: float | None
    criterion: Criterion  # PASS, FAIL or INSUFFICIENT DATA against the gate's payback window


def payback_of(*, inputs: dict, cost: economics.StudentCost, fallback_rate: float | None,
               window: float | None) -> Payback:
    """Months to earn back the build cost at the proposed fallback rate, priced by ``core.domain.economics`` with
    the evaluation's costs (the student's measured one when there is one; the detail says where it comes from).
    Never copied from the qualification's first estimate."""
    volume, build = inputs.get("monthly_volume"), inputs.get("build_cost")
    missing = [what for what, v in (("a proposed fallback threshold", fallback_rate),
                                    ("the student's cost measured by the evaluation", cost.student_per_1k),
                                    ("the teacher's cost per 1,000", cost.teacher_per_1k),
                                    ("the qualification's monthly volume", volume),
                                    ("the qualification's build cost", build)) if v is None]

    def judged(status: str, months: float | None, detail: str) -> Criterion:
        return Criterion(name="payback window", status=status, value=months, threshold=window, n=None,
                         detail=detail, direction="lower", unit="months", source=cost.source)

    if missing:
        return Payback(None, None, None, judged("INSUFFICIENT DATA", None,
                                                "payback cannot be computed without " + ", ".join(missing) + "."))
    paid = economics.payback(cost=cost, fallback_rate=fallback_rate, monthly_volume=float(volume),
                             build_cost=float(build))
    blended, saving, months = paid.blended_per_1k, paid.monthly_saving, paid.months
    basis = (f"the student serves {1 - fallback_rate:.0%} at {cost.student_per_1k:.4g} per 1,000 and the teacher "
             f"the {fallback_rate:.0%} that falls back at {cost.teacher_per_1k:.4g}: {blended:.4g} per 1,000 "
             f"blended; {economics.cost_sentence(cost)}")
    if months is None:
        return Payback(None, blended, saving, judged("FAIL", None, f"it never pays back: {basis}, no cheaper than "
                                                                  "the teacher alone."))
    if window is None:
        return Payback(months, blended, saving, judged("PASS", months, f"{months:.1f} months ({basis}); the gate "
                                                                       "sets no payback window."))
    ok = months <= float(window)
    return Payback(months, blended, saving, judged(
        "PASS" if ok else "FAIL", months,
        f"payback of {months:.1f} months ({basis}, saving {saving:,.0f} a month on a build of {float(build):,.0f}) "
        f"{'is within' if ok else 'exceeds'} the gate's window of {float(window):g} months."))


def payback(session: Session, *, project: Project, evaluation: Evaluation, report: EvaluationReport) -> Payback:
    """The payback of shipping this evaluation with its latest proposed fallback threshold, priced with the costs
    its threshold proposal was priced with (``review.evaluation_costs``)."""
    q = qualification.latest(session, project_id=project.id)
    proposals = review.threshold_proposals(session, evaluation_id=evaluation.id)
    spec = review._gate_spec(session, evaluation)
    return payback_of(inputs=(q.inputs if q else {}) or {},
                      cost=review.evaluation_costs(session, project=project, evaluation=evaluation, report=report),
                      fallback_rate=proposals[-1].fallback_rate if proposals else None,
                      window=spec.payback_months)


def _targets(spec: GateSpec | None, report: EvaluationReport | None, payback: float | None) -> list[Target]:
    def under(name: str, value: float | None, target: float | None) -> Target:
        met = None if value is None or target is None else value <= target
        return Target(name, value, target, met)

    report = report or EvaluationReport()
    student = report.latency.student_figures
    declared = f", declared by {student.declared_by}" if student.source == "declared" else ""
    return [
        under(f"p95 latency (ms){declared}", student.p95_ms, spec.p95_latency_ms if spec else None),
        under("cost per 1,000 requests", report.cost.student_per_1k, spec.cost_per_1k if spec else None),
        under("payback (months)", payback, spec.payback_months if spec else None),
    ]


def ship_blockers(session: Session, *, project: Project, evaluation: Evaluation,
                  report: EvaluationReport) -> list[str]:
    """Every reason this evaluation cannot ship, each a clause of one sentence."""
    out = []
    current = gate.current(session, project_id=project.id)
    if current is not None and current.id != evaluation.gate_version_id:
        out.append(f"it was evaluated under a gate since superseded by version {current.version}")
    not_passed = [f"{c.name} ({c.status})" for c in report.failing]
    if not_passed:
        out.append("criteria not passed: " + ", ".join(not_passed))
    elif not (report.passed and evaluation.passed):
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
        out.append("no fallback threshold has been proposed for it" + _cause(session, project, evaluation))
    else:
        judged = payback(session, project=project, evaluation=evaluation, report=report).criterion
        if not judged.passed:
            out.append(f"payback window {judged.status}: {judged.detail.rstrip('.')}"
                       + _cause(session, project, evaluation))
    return out


def _cause(session: Session, project: Project, evaluation: Evaluation) -> str:
    """Answers without confidence always fall back unless someone chose to serve them: say so where it blocks."""
    proposals = review.threshold_proposals(session, evaluation_id=evaluation.id)
    if proposals and review.serves_every_answer(proposals[-1]):
        return ""  # every answer is served already: the payback fails for another reason
    said = review.missing_confidence(session, project=project, evaluation=evaluation)
    return f"; the cause: {said}" if said else ""


def evidence(session: Session, *, project: Project) -> Evidence:
    """What the sponsor decides on: the evaluation in view (``evaluation_in_view``: once a ship or kill closed the
    project, the evaluation it named) and everything said about it. A closed project has nothing left to block
    or advise: its blockers and kill advice are empty."""
    spec = gate.spec_of(g) if (g := gate.current(session, project_id=project.id)) else None
    history = rounds_history(session, project_id=project.id)
    closed = closing_decision(session, project_id=project.id)
    kill = None if closed else kill_recommendation([r.criteria for r in history])
    rnd = current_round(session, project_id=project.id)
    ev = evaluation_in_view(session, project_id=project.id)
    if ev is None:
        return Evidence(project, rnd, None, [], False, [], None, _targets(spec, None, None), None,
                        history, kill, [] if closed else [f"no evaluation has been run in round {rnd}"],
                        closed_by=closed)
    report = load_report(session, ev)
    proposals = review.threshold_proposals(session, evaluation_id=ev.id)
    paid = payback(session, project=project, evaluation=ev, report=report)
    return Evidence(
        project=project, round=rnd, evaluation=ev, criteria=report.criteria,
        passed=report.passed, sign_offs=review.sign_offs(session, evaluation_id=ev.id),
        threshold=proposals[-1] if proposals else None, targets=_targets(spec, report, paid.months),
        payback_months=paid.months, rounds=history, kill=kill,
        ship_blockers=[] if closed else ship_blockers(session, project=project, evaluation=ev, report=report),
        payback=paid, closed_by=closed,
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
    closed = closing_decision(session, project_id=project.id)
    if closed is not None:
        raise GovernanceViolation(
            f"Project {project.name!r} was decided {closed.decision} in round {closed.round}{decided_on(closed)}: "
            "that decision is final."
        )
    evaluation, report = None, None
    if evaluation_id is None:
        if choice != Choice.KILL:
            raise InvalidInput(f"to {choice.value}, name the evaluation you decide on (--evaluation ID).",
                               field="evaluation")
    else:
        evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
        vouched.require(session, evaluation)
        vouched.one(session, GateVersion, evaluation.gate_version_id)
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
    request = {}
    if choice == Choice.ITERATE and evaluation is not None and report is not None:
        request = stored_json(data_request(review._gate_spec(session, evaluation), report, round_=rnd))
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
    notify(session, kind=Kind.DECISION, project_id=project.id, actor=actor, evaluation_id=row.evaluation_id,
           detail=f"{row.decision} in round {row.round}")
    session.commit()
    return row
