"""Step 5 of the playbook: the validator checks the disagreements and signs off one evaluation by its hash.

Whoever built the student never records a verdict or a sign-off here; validators review
blind (each sees only their own verdicts), and their agreement is measured with Cohen's kappa.
The validator or the operator also proposes the confidence threshold below which the teacher answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.access import separation, visibility
from core.access.projects import require_role, roles_of
from core.domain import economics, metrics
from core.domain.choices import VERDICTS
from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied, SeparationOfDuties
from core.domain.gate_spec import GateSpec, SliceFloor
from core.domain.report import EvaluationReport
from core.domain.roles import Role
from core.evaluation.runs import (
    get_evaluation,
    load_predictions,
    load_report,
    serve_every_answer_hint,
    without_confidence,
)
from core.gate import gate
from core.notify.inbox import notify
from core.notify.rules import Kind
from core.qualify import qualification
from core.store import audit, vouched
from core.store.models import Evaluation, GateVersion, Project, ReviewVerdict, SignOff, ThresholdProposal, User

# Columns of the predictions table that are not slice columns (see the issue-4 contract).
PREDICTION_COLUMNS = ("id", "text", "reference", "teacher_label", "teacher_confidence",
                      "student_label", "student_confidence", "severe")
THRESHOLD_STEP = 0.01


# --------------------------------------------------------------------------- reading an evaluation


def _gate_spec(session: Session, evaluation: Evaluation) -> GateSpec:
    return gate.spec_of(vouched.one(session, GateVersion, evaluation.gate_version_id))


def slice_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in PREDICTION_COLUMNS]


def slice_values(df: pd.DataFrame, column: str) -> list[str]:
    """The values a slice filter on ``column`` can take, as the filter compares them (text)."""
    return sorted(df[column].astype(str).unique())


def _reviewer_problem(session: Session, *, actor: User, project: Project, evaluation: Evaluation,
                      doing: str) -> GovernanceViolation | None:
    # Whoever created any evidence behind the evaluation is refused whatever roles they hold now
    # (core.access.separation); then a driver of the project; then anyone who is not its validator.
    sentence = separation.refusal(session, actor=actor, project=project, evaluation=evaluation, doing=doing)
    if sentence:
        return SeparationOfDuties(sentence)
    held = roles_of(session, project_id=project.id, user_id=actor.id)
    if Role.DRIVER in held:
        return SeparationOfDuties(f"{actor.username} drives project {project.name!r} and cannot {doing}: "
                                  "whoever builds the student must not validate it. Ask a validator.")
    try:
        require_role(session, actor=actor, project=project, role=Role.VALIDATOR, doing=doing)
    except PermissionDenied as exc:
        return exc
    return None


def review_refusal(session: Session, *, actor: User, project: Project, evaluation_id: int,
                   doing: str = "record verdicts or sign off") -> str | None:
    """Why ``actor`` may not judge the evaluation (record a verdict, sign off), or None when they may."""
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    problem = _reviewer_problem(session, actor=actor, project=project, evaluation=evaluation, doing=doing)
    return str(problem) if problem else None


def _require_reviewer(session: Session, *, actor: User, project: Project, evaluation: Evaluation,
                      doing: str) -> None:
    problem = _reviewer_problem(session, actor=actor, project=project, evaluation=evaluation, doing=doing)
    if problem:
        raise problem


# --------------------------------------------------------------------------- the disagreement queue


@dataclass(frozen=True)
class Queue:
    items: pd.DataFrame  # prediction rows plus critical_slice and severe_class, in review order
    total: int  # disagreements before the limit


def _in_critical_slice(df: pd.DataFrame, floors: list[SliceFloor]) -> pd.Series:
    mask = pd.Series(False, index=df.index)
    for f in floors:
        if f.column in df.columns:
            mask |= df[f.column].astype(str) == f.value
    return mask


def disagreement_queue(
    session: Session, *, project: Project, evaluation_id: int,
    slice: tuple[str, str] | None = None, limit: int | None = 200,  # noqa: A002 (the contract's name)
    predictions: pd.DataFrame | None = None,
) -> Queue:
    """Rows where student and teacher differ, or either differs from the reference (for an imported ranking:
    the items of queries whose top k differs; for imported text the rows carry core's word diff).

    Critical rows first (in a slice the gate names, then a severe class), then the
    student's least confident answers.
    """
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    # A caller that already loaded (and hash-checked) the table passes it, so a page reads it once.
    df = load_predictions(session, evaluation) if predictions is None else predictions
    spec = _gate_spec(session, evaluation)
    if slice is not None:
        column, value = slice
        if column not in slice_columns(df):
            names = ", ".join(slice_columns(df)) or "none"
            raise InvalidInput(f"slice column {column!r} is not in the evaluation; use one of: {names}.",
                               field="slice")
        df = df[df[column].astype(str) == str(value)]
    rows = np.flatnonzero(_differs(df))
    order = _review_order(df, rows, spec)
    out = df.iloc[order[:limit] if limit is not None else order].copy()  # only the rows shown are copied
    out["critical_slice"] = _in_critical_slice(out, spec.slice_floors)
    out["severe_class"] = _in_severe_class(out, spec)
    return Queue(items=out.reset_index(drop=True), total=len(rows))


def _differs(df: pd.DataFrame) -> np.ndarray:
    """Rows where student and teacher differ, or either differs from the reference (a missing answer differs from
    everything); for an imported ranking, the queries whose top k differs from the teacher's."""
    if "top_k_differs" in df.columns:
        return df["top_k_differs"].astype(bool).to_numpy()
    student, teacher, ref = (df[c] for c in ("student_label", "teacher_label", "reference"))
    has_ref = ref.notna().to_numpy()
    return ~metrics.same(student, teacher) | (has_ref & ~(metrics.same(student, ref) & metrics.same(teacher, ref)))


def _in_severe_class(df: pd.DataFrame, spec: GateSpec) -> pd.Series:
    severe = set(spec.severe_errors.classes)
    return df["reference"].isin(severe) | df["teacher_label"].isin(severe)


def _review_order(df: pd.DataFrame, rows: np.ndarray, spec: GateSpec) -> np.ndarray:
    """Positions of ``rows`` in review order: critical slice first, then severe class, then the least confident
    (no confidence first); a stable sort of the three keys alone, not of every column."""
    keys = pd.DataFrame({"critical": _in_critical_slice(df, spec.slice_floors).to_numpy()[rows],
                         "severe": _in_severe_class(df, spec).to_numpy()[rows],
                         "confidence": df["student_confidence"].to_numpy()[rows]})
    ordered = keys.sort_values(["critical", "severe", "confidence"], ascending=[False, False, True],
                               na_position="first", kind="stable")
    return rows[ordered.index.to_numpy()]


# --------------------------------------------------------------------------- the slice heatmap

HEATMAP_METRICS = ("accuracy", "macro_f1", "agreement")


@dataclass(frozen=True)
class HeatmapRow:
    label: str  # "column=value (n=...)"
    values: list[float | None]  # the student's score per HEATMAP_METRICS
    gaps: list[float | None]  # the colour: accuracy and macro-F1 against the teacher, agreement against overall
    worst: float  # the most negative gap (0 when none): the ordering key


def heatmap_rows(report: EvaluationReport, *, limit: int = 40) -> list[HeatmapRow]:
    """Slices worst first: accuracy and macro-F1 by their gap to the teacher on the same slice; agreement
    (which the teacher has no counterpart for) by its gap to the student's overall agreement."""
    overall_agreement = report.student.agreement
    rows = []
    for s in report.slices:
        stu, tea = s.student, s.teacher
        gaps: list[float | None] = []
        for m in HEATMAP_METRICS[:2]:
            mine, theirs = getattr(stu, m), getattr(tea, m)
            gaps.append(mine - theirs if mine is not None and theirs is not None else None)
        gaps.append(stu.agreement - overall_agreement
                    if stu.agreement is not None and overall_agreement is not None else None)
        worst = min((g for g in gaps if g is not None), default=0.0)
        rows.append(HeatmapRow(f"{s.column}={s.value} (n={s.n:,})",
                               [getattr(stu, m) for m in HEATMAP_METRICS], gaps, worst))
    rows.sort(key=lambda r: r.worst)
    return rows[:limit]


# --------------------------------------------------------------------------- verdicts


def record_verdict(
    session: Session, *, actor: User, project: Project, evaluation_id: int, item_id: str, verdict: str,
    comment: str = "", rating: int | None = None,
) -> ReviewVerdict:
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    _require_reviewer(session, actor=actor, project=project, evaluation=evaluation, doing="record a review verdict")
    if verdict not in VERDICTS:
        raise InvalidInput(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}.", field="verdict")
    if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
        raise InvalidInput(f"rating {rating!r} is not a whole number from 1 to 5: give 1 to 5 or none.",
                           field="rating")
    item_id = str(item_id)
    if item_id not in set(load_predictions(session, evaluation)["id"].astype(str)):
        raise InvalidInput(f"item {item_id!r} is not in evaluation #{evaluation.id}: pick one from its queue.",
                           field="item")
    if _existing_verdict(session, evaluation_id=evaluation.id, item_id=item_id, validator_id=actor.id):
        raise InvalidInput(_twice(actor, item_id, evaluation.id), field="item")
    row = ReviewVerdict(project_id=project.id, evaluation_id=evaluation.id, item_id=item_id, verdict=verdict,
                        rating=rating, comment=(comment or "").strip(), validator_id=actor.id)
    try:
        session.add(row)
        session.flush()
    except IntegrityError:  # a concurrent second verdict by the same validator
        session.rollback()
        raise InvalidInput(_twice(actor, item_id, evaluation.id), field="item") from None
    audit.record(session, actor=actor, action="review.verdict", entity="review_verdict", entity_id=row.id,
                 project_id=project.id, payload={"evaluation_id": evaluation.id, "item_id": item_id,
                                                 "verdict": verdict, "rating": rating, "comment": row.comment})
    session.commit()
    return row


def _twice(actor: User, item_id: str, evaluation_id: int) -> str:
    return (f"{actor.username} already recorded a verdict on item {item_id!r} of evaluation #{evaluation_id}: "
            "verdicts are final; add what changed in a comment on the sign-off.")


def _existing_verdict(session: Session, *, evaluation_id: int, item_id: str, validator_id: int) -> bool:
    return session.exec(select(ReviewVerdict.id).where(
        ReviewVerdict.evaluation_id == evaluation_id, ReviewVerdict.item_id == item_id,
        ReviewVerdict.validator_id == validator_id)).first() is not None


def my_verdicts(session: Session, *, actor: User, evaluation_id: int) -> list[ReviewVerdict]:
    """A validator's own verdicts only: reviews are blind to each other."""
    return list(session.exec(select(ReviewVerdict).where(
        ReviewVerdict.evaluation_id == evaluation_id, ReviewVerdict.validator_id == actor.id,
    ).order_by(col(ReviewVerdict.id))).all())


def _all_verdicts(session: Session, *, evaluation_id: int) -> pd.DataFrame:
    rows = session.exec(select(ReviewVerdict.item_id, ReviewVerdict.validator_id, ReviewVerdict.verdict)
                        .where(ReviewVerdict.evaluation_id == evaluation_id)).all()
    return pd.DataFrame(list(rows), columns=["item_id", "validator_id", "verdict"])


@dataclass(frozen=True)
class Ratings:
    """The human-rating metric: validators' 1-5 ratings of the student's outputs."""

    n: int
    mean: float | None
    counts: dict[int, int]


def ratings(session: Session, *, evaluation_id: int, viewer: User) -> Ratings:
    """The ratings ``viewer`` may see (blind review: core.access.visibility)."""
    values = [int(v.rating) for v in visibility.visible_verdicts(session, viewer=viewer, evaluation_id=evaluation_id)
              if v.rating is not None]
    return Ratings(n=len(values), mean=sum(values) / len(values) if values else None,
                   counts={k: values.count(k) for k in range(1, 6)})


@dataclass(frozen=True)
class PairAgreement:
    validator_a: str
    validator_b: str
    n_items: int
    kappa: float | None  # None when undefined: no shared items, or both used one verdict only


def cohen_kappa(a: list[str] | pd.Series, b: list[str] | pd.Series) -> float | None:
    """Cohen's kappa of two raters' labels on the same items.

    Written out rather than imported: it is a few lines over a crosstab, and
    scikit-learn's import alone takes longer than a review page's whole run.
    """
    a, b = pd.Series(list(a), dtype=object), pd.Series(list(b), dtype=object)
    if len(a) == 0:
        return None
    observed = float((a.to_numpy() == b.to_numpy()).mean())
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    expected = float(sum(pa.get(k, 0.0) * pb.get(k, 0.0) for k in set(pa.index) | set(pb.index)))
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def agreement(session: Session, *, evaluation_id: int, viewer: User) -> list[PairAgreement]:
    """Kappa between each pair of validators, over the items both reviewed.

    Blind review: before an approving sign-off, a viewer sees only the pairs they belong to (every item of
    such a pair carries the viewer's own verdict); afterwards every pair.
    """
    df = _all_verdicts(session, evaluation_id=evaluation_id)
    if df.empty:
        return []
    rule = visibility.blind(session, viewer=viewer, evaluation_id=evaluation_id)
    names = {u.id: u.username for u in vouched.rows(
        session, User, col(User.id).in_(df["validator_id"].unique().tolist()))}
    wide = df.pivot(index="item_id", columns="validator_id", values="verdict")
    out = []
    for x, y in combinations(sorted(wide.columns, key=lambda v: names[v]), 2):
        if not (rule.signed_off or viewer.id in (x, y)):
            continue
        both = wide[[x, y]].dropna()
        out.append(PairAgreement(names[x], names[y], len(both), cohen_kappa(both[x], both[y])))
    return out


@dataclass(frozen=True)
class SliceCoverage:
    column: str
    value: str
    reviewed: int  # distinct items of the slice with at least one verdict
    required: int

    @property
    def met(self) -> bool:
        return self.reviewed >= self.required


def review_coverage(session: Session, *, project: Project, evaluation_id: int,
                    predictions: pd.DataFrame | None = None) -> list[SliceCoverage]:
    """Reviewed items per critical slice (each slice floor of the gate) against the gate's minimum."""
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    spec = _gate_spec(session, evaluation)
    required = spec.min_reviews_per_critical_slice
    df = load_predictions(session, evaluation) if predictions is None else predictions
    reviewed = set(_all_verdicts(session, evaluation_id=evaluation.id)["item_id"])
    df = df[df["id"].astype(str).isin(reviewed)]
    out = []
    for f in spec.slice_floors:
        n = int((df[f.column].astype(str) == f.value).sum()) if f.column in df.columns else 0
        out.append(SliceCoverage(f.column, f.value, n, required))
    return out


# --------------------------------------------------------------------------- sign-off


def sign_off(
    session: Session, *, actor: User, project: Project, evaluation_id: int, approve: bool | None, comment: str = "",
    covers_declared_latency: bool = False,
) -> SignOff:
    """Approve or reject exactly this evaluation, named by the hash of its report. Approving an evaluation whose
    latency a person declared (not measured by Stillroom) needs ``covers_declared_latency``: the validator
    vouches for those figures too."""
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    _require_reviewer(session, actor=actor, project=project, evaluation=evaluation, doing="sign off an evaluation")
    if approve is None:  # the page preselects nothing: a validator's sign-off is always their own choice
        raise InvalidInput("choose approve or reject: nothing is chosen for you.", field="sign-off")
    comment = (comment or "").strip()
    if not approve and not comment:
        raise InvalidInput("a rejection needs a comment: say what must change before you would approve.",
                           field="comment")
    report = load_report(session, evaluation)  # refuses a report changed since it was evaluated
    student_latency = report.latency.student_figures
    declared = student_latency.source == "declared"
    if approve and declared and not covers_declared_latency:
        raise GovernanceViolation(
            f"Evaluation #{evaluation.id}'s latency was declared by {student_latency.declared_by}, not "
            "measured by Stillroom: approve only if your sign-off covers those figures too (say so explicitly), "
            "or ask the driver to have Stillroom measure the student.")
    if approve:
        short = [c for c in review_coverage(session, project=project, evaluation_id=evaluation.id) if not c.met]
        if short:
            gaps = "; ".join(f"{c.column}={c.value} has {c.reviewed} of {c.required}" for c in short)
            raise GovernanceViolation(
                f"Evaluation #{evaluation.id} cannot be approved yet: the gate asks for {short[0].required} "
                f"reviewed items per critical slice and {gaps}. Review more items of those slices first."
            )
    row = SignOff(project_id=project.id, evaluation_id=evaluation.id, evaluation_hash=evaluation.report_hash,
                  approve=bool(approve), comment=comment, validator_id=actor.id,
                  covers_declared_latency=bool(approve and declared and covers_declared_latency))
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="review.signoff", entity="sign_off", entity_id=row.id,
                 project_id=project.id, payload={"evaluation_id": evaluation.id, "approve": bool(approve),
                                                 "evaluation_hash": evaluation.report_hash, "comment": comment,
                                                 "covers_declared_latency": row.covers_declared_latency})
    notify(session, kind=Kind.SIGNOFF, project_id=project.id, actor=actor, evaluation_id=evaluation.id,
           detail="approved" if approve else "rejected")
    session.commit()
    return row


def sign_offs(session: Session, *, evaluation_id: int) -> list[SignOff]:
    """The evaluation's sign-offs the audit chain vouches for (a row forged or flipped with raw SQL is not one)."""
    return vouched.rows(session, SignOff, SignOff.evaluation_id == evaluation_id, order_by=col(SignOff.id))


# --------------------------------------------------------------------------- fallback threshold


def evaluation_costs(session: Session, *, project: Project, evaluation: Evaluation,
                     report: EvaluationReport | None = None) -> economics.StudentCost:
    """The costs an evaluation is priced with everywhere (its curve, a threshold proposal, the payback): the ones
    its report measured or was given, the teacher's taken from the latest qualification where the report has none."""
    report = load_report(session, evaluation) if report is None else report
    q = qualification.latest(session, project_id=project.id)
    teacher = qualification.inputs_of(q).teacher_cost_per_1k if q else None
    return economics.StudentCost.from_report(report.cost.model_dump(), teacher_per_1k=teacher)


def fallback_curve(df: pd.DataFrame, costs: economics.StudentCost | None,
                   thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Per threshold: the share the student serves (confidence >= t), its accuracy there, the fallback
    rate and the blended cost per 1,000 (none when the costs are not known). Accuracy is against the truth
    (``metrics.truth_of``: the reference, else the teacher)."""
    if thresholds is None:
        thresholds = np.round(np.arange(0, 1 + THRESHOLD_STEP / 2, THRESHOLD_STEP), 2)
    thresholds = np.asarray(thresholds, dtype=float)
    correct = metrics.matches_truth(df, "student_label")
    if "top_k_differs" in df.columns:  # an imported ranking: an item is right when its query's top k is the teacher's
        correct = ~df["top_k_differs"].astype(bool).to_numpy()
    conf = pd.to_numeric(df["student_confidence"], errors="coerce").to_numpy(dtype=float)
    known = ~np.isnan(conf)  # no confidence: always falls back
    order = np.argsort(conf[known], kind="stable")
    conf_sorted, correct_sorted = conf[known][order], correct[known][order]
    # Suffix sums: served rows for threshold t are those from the first index with conf >= t.
    correct_from = np.concatenate([np.cumsum(correct_sorted[::-1])[::-1], [0]])
    first = np.searchsorted(conf_sorted, thresholds, side="left")
    served = len(conf_sorted) - first
    n = max(len(df), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(served > 0, correct_from[first] / np.maximum(served, 1), np.nan)
    served_share = served / n
    out = pd.DataFrame({"threshold": thresholds, "served_share": served_share, "student_accuracy": accuracy,
                        "fallback_rate": 1.0 - served_share})
    out["blended_cost_per_1k"] = _blended(costs, out["fallback_rate"])
    return out


def _blended(costs: economics.StudentCost | None, fallback_rates: pd.Series) -> list[float] | float:
    if costs is None or costs.student_per_1k is None or costs.teacher_per_1k is None:
        return np.nan
    return [economics.blended_per_1k(student_per_1k=costs.student_per_1k, teacher_per_1k=costs.teacher_per_1k,
                                     fallback_rate=float(rate)) for rate in fallback_rates]


def evaluation_curve(session: Session, *, project: Project, evaluation_id: int,
                     predictions: pd.DataFrame | None = None, report: dict | None = None) -> pd.DataFrame:
    """The fallback curve of one evaluation, priced with its own costs (``evaluation_costs``); a caller that
    already read (and hash-checked) its predictions or report passes them."""
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    df = load_predictions(session, evaluation) if predictions is None else predictions
    return fallback_curve(df, evaluation_costs(session, project=project, evaluation=evaluation, report=report))


def _none_if_nan(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def threshold_refusal(session: Session, *, actor: User, project: Project) -> str | None:
    """Why ``actor`` may not propose the fallback threshold, or None: a validator or an operator of the
    project may, a driver of it never (the builder does not set the net under their own student)."""
    held = roles_of(session, project_id=project.id, user_id=actor.id)
    if held & {Role.VALIDATOR, Role.OPERATOR} and Role.DRIVER not in held:
        return None
    why = " and drives it" if Role.DRIVER in held else ""
    return (f"Only a validator or an operator of project {project.name!r} who does not drive it can propose the "
            f"fallback threshold; {actor.username} holds {', '.join(sorted(r.value for r in held)) or 'no role'} "
            f"there{why}.")


SERVE_EVERY_ANSWER = "serve every answer"  # the recorded choice: threshold 0, nothing falls back


def _threshold(value: float | None, serve_every_answer: bool) -> float:
    if serve_every_answer:
        if value not in (None, 0):
            raise InvalidInput(f"\"{SERVE_EVERY_ANSWER}\" is threshold 0 (no fallback): give it without another "
                               "threshold.", field="threshold")
        return 0.0
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput("the threshold must be a confidence between 0 and 1, e.g. 0.7.", field="threshold")
    return threshold


def propose_threshold(
    session: Session, *, actor: User, project: Project, evaluation_id: int, threshold: float | None = None,
    serve_every_answer: bool = False,
) -> ThresholdProposal:
    """Save the confidence threshold for rollout, with its figures from the curve.

    ``serve_every_answer`` is the explicit choice for answers without a confidence (which every threshold
    otherwise sends to the teacher): threshold 0, every answer served, none falls back. Its audit event
    names the choice and how many answers carried no confidence, so it is attributed and on the record.
    """
    refused = threshold_refusal(session, actor=actor, project=project)
    if refused:
        raise PermissionDenied(refused)
    evaluation = get_evaluation(session, project=project, evaluation_id=evaluation_id)
    threshold = _threshold(threshold, serve_every_answer)
    df = load_predictions(session, evaluation)
    missing = without_confidence(df)
    if serve_every_answer:  # an answer without a confidence is served like one at 0: nothing falls back
        df = df.assign(student_confidence=pd.to_numeric(df["student_confidence"], errors="coerce").fillna(0.0))
    costs = evaluation_costs(session, project=project, evaluation=evaluation)
    point = fallback_curve(df, costs, np.array([threshold])).iloc[0]
    row = ThresholdProposal(
        project_id=project.id, evaluation_id=evaluation.id, threshold=threshold,
        served_share=float(point["served_share"]), student_accuracy=_none_if_nan(point["student_accuracy"]),
        fallback_rate=float(point["fallback_rate"]), blended_cost_per_1k=_none_if_nan(point["blended_cost_per_1k"]),
        created_by=actor.id,
    )
    session.add(row)
    session.flush()
    choice = {"choice": SERVE_EVERY_ANSWER, "without_confidence": missing} if serve_every_answer else {}
    audit.record(session, actor=actor, action="review.threshold", entity="threshold_proposal", entity_id=row.id,
                 project_id=project.id, payload={"evaluation_id": evaluation.id, "threshold": threshold,
                                                 "served_share": row.served_share,
                                                 "student_accuracy": row.student_accuracy,
                                                 "blended_cost_per_1k": row.blended_cost_per_1k, **choice})
    session.commit()
    return row


def serves_every_answer(proposal: ThresholdProposal) -> bool:
    """Nothing falls back at this proposal: the student answers every request."""
    return proposal.threshold == 0 and proposal.fallback_rate == 0


def choice_of(proposal: ThresholdProposal) -> str:
    """A proposal in words: the teacher answers below its threshold, or every answer is served."""
    if serves_every_answer(proposal):
        return f"{SERVE_EVERY_ANSWER} (no fallback)"
    return f"the teacher answers below {proposal.threshold:g}"


def missing_confidence(session: Session, *, project: Project, evaluation: Evaluation,
                       predictions: pd.DataFrame | None = None) -> str | None:
    """Why the fallback curve sends answers of this evaluation to the teacher at every threshold, and the choice
    that serves them, as a clause; None when every answer carries a confidence."""
    df = load_predictions(session, evaluation) if predictions is None else predictions
    missing = without_confidence(df)
    if not missing:
        return None
    answered = int(df["answered"].sum()) if "answered" in df.columns else len(df)
    hint = serve_every_answer_hint(f'stillroom review threshold "{project.name}" {evaluation.id} '
                                   "--serve-every-answer")
    return (f"evaluation #{evaluation.id}'s predictions carry no confidence ({missing:,} of {answered:,} rows), so "
            f"at any threshold those answers fall back to the teacher: {hint}")


def threshold_proposals(session: Session, *, evaluation_id: int) -> list[ThresholdProposal]:
    """The evaluation's proposed thresholds the audit chain vouches for: one INSERTed with raw SQL is neither
    what a rollout starts with nor what the payback is priced at."""
    return vouched.rows(session, ThresholdProposal, ThresholdProposal.evaluation_id == evaluation_id,
                        order_by=col(ThresholdProposal.id))
