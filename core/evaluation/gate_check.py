"""The gate check: each criterion of the locked gate set against the evaluation's numbers.

A pure function of (spec, numbers): PASS, FAIL or INSUFFICIENT DATA per criterion, each with
the value, the threshold, the sample size, one sentence a sponsor can read and where its figure came
from (measured, declared by whom, assumed, or the teacher run it rests on). The gate passes only when
every criterion passes, so a rare, severe slice below its floor fails the gate however good the
average is. A teacher figure counts only with ``GateNumbers.teacher_source`` set: teacher answers
fixed before the student's (core.evaluation.teacher_bar); without them such a criterion is
INSUFFICIENT DATA, never PASS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.domain.criteria import FAIL, INSUFFICIENT, NOT_RECORDED, PASS, Criterion, meets
from core.domain.gate_spec import FloorKind, GateSpec, Metric
from core.domain.metrics import wilson
from core.domain.validation import parse


@dataclass(frozen=True)
class SliceNumbers:
    n: int  # rows the gate's metric is measured on in this slice (labelled rows for accuracy-type metrics)
    value: float | None  # the student's score on the gate's metric in this slice
    rows: int = 0  # all holdout rows of the slice


@dataclass(frozen=True)
class GateNumbers:
    """What an evaluation measured, keyed by gate metric name (accuracy, macro-f1, teacher-agreement, ...)."""

    student: dict[str, float | None]
    teacher: dict[str, float | None]
    baseline: dict[str, float | None]  # the better of the majority class and TF-IDF, metric by metric
    n: dict[str, int]  # rows each metric is measured on
    slices: dict[tuple[str, str], SliceNumbers] = field(default_factory=dict)
    severe_rate: float | None = None  # the miss rate on severe items: severe_missed / severe_items
    n_severe: int = 0  # kept for callers that fill only these three; severe_missed wins when set
    n_rows: int = 0
    severe_items: int = 0  # items whose truth (reference, else the teacher's answer) is a severe class
    severe_missed: int = 0  # of those, the student answered another class or nothing
    non_severe_items: int = 0  # items whose truth is known and not severe
    false_alarms: int = 0  # of those, the student answered a severe class
    p95_latency_ms: float | None = None
    cost_per_1k: float | None = None
    fields: dict[str, SliceNumbers] = field(default_factory=dict)  # extraction: accuracy per field
    latency_declared_by: str | None = None  # set when the p95 was declared by this person, not measured here
    # The trusted teacher answers the teacher figures (and teacher agreement) rest on, named for the report
    # ("teacher run #4 by dana, locked at ..."); None: there are none, and teacher_refused says why.
    teacher_source: str | None = None
    teacher_refused: str = ""
    cost_source: str | None = None  # "declared by sam in the qualification", "assumed: ...", "measured ..."


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _at_least(name: str, value: float | None, threshold: float | None, n: int | None, what: str) -> Criterion:
    if value is None or threshold is None:
        missing = "the student's score" if value is None else "the comparison score"
        return Criterion(name, INSUFFICIENT, value, threshold, n,
                         f"{what}: {missing} could not be measured on this holdout (n={n or 0}).")
    ok = meets(value, threshold)
    verb = "reaches" if ok else "falls short of"
    return Criterion(name, PASS if ok else FAIL, value, threshold, n,
                     f"{what}: {_fmt(value)} {verb} the floor of {_fmt(threshold)} (n={n}).")


def _at_most(name: str, value: float | None, limit: float, n: int | None, what: str, unit: str = "",
             kind: str = "proportion") -> Criterion:
    if value is None:
        return Criterion(name, INSUFFICIENT, None, limit, n, f"{what} was not measured, so it cannot be checked.",
                         "lower", kind)
    ok = meets(value, limit, at_most=True)
    verb = "is within" if ok else "exceeds"
    return Criterion(name, PASS if ok else FAIL, value, limit, n,
                     f"{what} of {_fmt(value)}{unit} {verb} the limit of {_fmt(limit)}{unit}.", "lower", kind)


def metric_name(spec: GateSpec) -> str:
    """The gate metric as people read it: a ranking's NDCG names its k."""
    metric = str(spec.metric)
    return f"ndcg@{spec.ranking_k}" if metric == Metric.NDCG else metric


def field_floor(spec: GateSpec, numbers: GateNumbers, f) -> Criterion:
    """An extracted field's accuracy against its own floor (INSUFFICIENT DATA below its minimum sample)."""
    name = f"field {f.field}: accuracy"
    got = numbers.fields.get(f.field) or SliceNumbers(n=0, value=None)
    if got.n < f.min_n:
        return Criterion(name, INSUFFICIENT, got.value, f.floor, got.n,
                         f"the holdout has {got.n} rows whose reference has the field {f.field}, fewer than the "
                         f"{f.min_n} the gate requires: add such examples to the holdout.", source="measured")
    return replace(_at_least(name, got.value, f.floor, got.n, f"the student's accuracy on the field {f.field}"),
                   source="measured")


def latency(spec: GateSpec, numbers: GateNumbers) -> Criterion:
    """The p95 target against a latency Stillroom measured; a declared one only where the gate accepts it."""
    c = _at_most("p95 latency", numbers.p95_latency_ms, spec.p95_latency_ms, None,
                 "the student's single-request p95 latency", " ms", "ms")
    who = numbers.latency_declared_by
    if c.status == INSUFFICIENT:
        return replace(c, source="not measured")
    if who is None:
        return replace(c, source="measured")
    c = replace(c, source=f"declared by {who}")
    if not spec.declared_latency_acceptable:
        return replace(c, status=INSUFFICIENT,
                       detail=f"the p95 latency of {_fmt(c.value)} ms was declared by {who}, not measured by "
                              "Stillroom, and this gate does not accept declared latency: measure the student "
                              "(a local model or its HTTP endpoint) or lock a gate that accepts declared figures.")
    return replace(c, detail=f"{c.detail} (declared by {who}; the gate accepts declared latency)")


def cost(spec: GateSpec, numbers: GateNumbers) -> Criterion:
    """The student's cost per 1,000 requests against the target, saying whose figure it is."""
    c = _at_most("cost per 1,000 requests", numbers.cost_per_1k, spec.cost_per_1k, None,
                 "the student's cost per 1,000 requests", "", "cost")
    source = numbers.cost_source or ("not given" if c.value is None else NOT_RECORDED)
    if c.value is None:
        return replace(c, source=source)
    return replace(c, source=source, detail=f"{c.detail[:-1]} ({source}).")


def _figure_source(spec: GateSpec, numbers: GateNumbers) -> str:
    """Where the student's score on the gate's metric comes from: agreement is measured against the teacher."""
    if str(spec.metric) == Metric.AGREEMENT:
        return f"measured against {numbers.teacher_source}" if numbers.teacher_source else "no trusted teacher"
    return "measured"


def _no_teacher(name: str, value: float | None, n: int | None, what: str, numbers: GateNumbers) -> Criterion:
    why = f" ({numbers.teacher_refused})" if numbers.teacher_refused else ""
    return Criterion(name, INSUFFICIENT, value, None, n,
                     f"{what} cannot be judged against the teacher: no teacher answers were fixed before the "
                     f"student's answers{why}. Run the project's teacher on the holdout (`stillroom teacher run`), "
                     "or have a driver other than the student's author import the teacher's outputs, then evaluate "
                     "again.",
                     source="no trusted teacher")


def quality(spec: GateSpec, numbers: GateNumbers) -> Criterion:
    metric, floor = str(spec.metric), spec.quality_floor
    value, n = numbers.student.get(metric), numbers.n.get(metric, 0)
    name = f"quality floor: {metric_name(spec)}"
    shown = metric_name(spec)
    if str(spec.metric) == Metric.AGREEMENT and numbers.teacher_source is None:
        return _no_teacher(name, None, n, f"the student's {shown}", numbers)
    if floor.kind == FloorKind.ABSOLUTE:
        c = _at_least(name, value, floor.value, n, f"the student's {shown}")
    elif floor.kind == FloorKind.RELATIVE_TO_TEACHER:
        if numbers.teacher_source is None:
            return _no_teacher(name, value, n, f"the student's {shown}", numbers)
        teacher = numbers.teacher.get(metric)  # keyed by the metric (ndcg@k), whatever the gate's k
        threshold = None if teacher is None else floor.value * teacher
        return replace(_at_least(name, value, threshold, n,
                                 f"the student's {shown} against {floor.value:g} x the teacher's {_fmt(teacher)}"),
                       source=numbers.teacher_source)
    else:
        baseline = numbers.baseline.get(metric)
        threshold = None if baseline is None else baseline + floor.value
        c = _at_least(name, value, threshold, n,
                      f"the student's {shown} against the best baseline's {_fmt(baseline)} + {floor.value:g}")
    return replace(c, source=_figure_source(spec, numbers))


def slice_sufficient(n: int, min_n: int) -> bool:
    """The one slice-sufficiency rule, shared by the gate check and the iterate data request: a slice is judged
    only on at least ``min_n`` holdout rows scored on the gate's metric."""
    return n >= min_n


def slice_floor(spec: GateSpec, numbers: GateNumbers, s) -> Criterion:
    metric = str(spec.metric)
    name = f"slice {s.column}={s.value}: {metric}"
    got = numbers.slices.get((s.column, s.value)) or SliceNumbers(n=0, value=None)
    if metric == Metric.AGREEMENT and numbers.teacher_source is None:
        c = _no_teacher(name, None, got.n, f"the student's {metric} on {s.column}={s.value}", numbers)
    elif not slice_sufficient(got.n, s.min_n):
        c = Criterion(name, INSUFFICIENT, got.value, s.floor, got.n,
                      f"the holdout has {got.n} scored rows in {s.column}={s.value}, fewer than the {s.min_n} "
                      "the gate requires: add examples of this slice to the holdout (not to the training data).")
    else:
        c = _at_least(name, got.value, s.floor, got.n, f"the student's {metric} on {s.column}={s.value}")
    return replace(c, slice_column=s.column, slice_value=s.value, source=c.source or _figure_source(spec, numbers))


SEVERE = "severe classes missed"


def severe(spec: GateSpec, numbers: GateNumbers) -> Criterion:
    """Of the items whose truth is a severe class, the share the student missed or mislabelled, against the
    gate's ceiling; too few such items in the holdout is INSUFFICIENT DATA. False alarms (non-severe items
    labelled severe) are reported beside it, not gated."""
    rule = spec.severe_errors
    if not rule.classes:
        return Criterion(SEVERE, PASS, None, rule.max_rate, 0,
                         "the gate marks no class as severe, so no answer counts as a severe miss.", "lower")
    k, n = numbers.severe_missed, numbers.severe_items
    names = ", ".join(rule.classes)
    alarms = (f" It labelled {numbers.false_alarms} of {numbers.non_severe_items} non-severe items as severe "
              f"(false alarms, shown, not gated: {_fmt(numbers.false_alarms / numbers.non_severe_items)})."
              if numbers.non_severe_items else "")
    if n < rule.min_n:
        return Criterion(SEVERE, INSUFFICIENT, k / n if n else None, rule.max_rate, n,
                         f"the holdout has {n} items whose truth is a severe class ({names}), fewer than the "
                         f"{rule.min_n} the gate requires to judge the miss rate: add such items to the holdout."
                         + alarms, "lower")
    rate = k / n
    low, high = (float(x) for x in wilson(k, n))
    ok = meets(rate, rule.max_rate, at_most=True)
    return Criterion(SEVERE, PASS if ok else FAIL, rate, rule.max_rate, n,
                     f"the student missed or mislabelled {k} of the {n} items whose truth is severe ({names}): "
                     f"a miss rate of {_fmt(rate)} (95 % interval {_fmt(low)} to {_fmt(high)}) "
                     f"{'is within' if ok else 'exceeds'} the ceiling of {_fmt(rule.max_rate)}." + alarms,
                     "lower", "proportion", low, high)


def check(spec: GateSpec | dict, numbers: GateNumbers) -> list[Criterion]:
    """Every criterion of the gate, in the gate's order: quality, slices, severe errors, latency, cost."""
    spec = parse(GateSpec, spec) if isinstance(spec, dict) else spec
    out = [quality(spec, numbers)]
    out += [slice_floor(spec, numbers, s) for s in spec.slice_floors]
    out += [field_floor(spec, numbers, f) for f in spec.field_floors]
    truth = "measured against the holdout's references" + (
        ", else the trusted teacher's answers" if numbers.teacher_source else "")
    out.append(replace(severe(spec, numbers), source=truth))
    out.append(latency(spec, numbers))
    out.append(cost(spec, numbers))
    return out


def passed(criteria: list[Criterion]) -> bool:
    return bool(criteria) and all(c.status == PASS for c in criteria)
