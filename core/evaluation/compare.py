"""Evaluations side by side (as MLflow's compare view does for runs): every criterion and every slice of two
or more evaluations of one project, each figure with its interval where one was measured, and its change
against the first evaluation picked (the base)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from core.domain.errors import InvalidInput
from core.domain.report import EvaluationReport
from core.evaluation import runs
from core.store.models import Evaluation, Project


@dataclass(frozen=True)
class Figure:
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    status: str = ""  # a criterion's verdict; empty for a slice

    @property
    def above(self) -> float:
        """How far the interval reaches above the figure, for an error bar (0 where none was measured)."""
        return 0.0 if self.value is None or self.ci_high is None else self.ci_high - self.value

    @property
    def below(self) -> float:
        return 0.0 if self.value is None or self.ci_low is None else self.value - self.ci_low


@dataclass(frozen=True)
class Row:
    """One criterion or one slice across the evaluations (a figure per evaluation id; None where absent)."""

    kind: str  # "criterion" or "slice"
    name: str
    figures: dict[int, Figure | None]

    def figure(self, evaluation_id: int) -> Figure:
        """The evaluation's figure, or an empty one where its report has no such row."""
        return self.figures.get(evaluation_id) or Figure(None)

    def delta(self, evaluation_id: int, base_id: int) -> float | None:
        here, base = self.figures.get(evaluation_id), self.figures.get(base_id)
        if here is None or base is None or here.value is None or base.value is None:
            return None
        return here.value - base.value


@dataclass(frozen=True)
class Comparison:
    evaluations: list[Evaluation]  # in the order picked; the first is the base
    labels: dict[int, str]
    rows: list[Row]

    @property
    def base_id(self) -> int:
        return int(self.evaluations[0].id or 0)

    def lines(self) -> list[dict]:
        """One line per row: each evaluation's figure (with its interval) and its change against the base."""
        out = []
        for row in self.rows:
            line: dict = {"What": row.kind, "Name": row.name}
            for e in self.evaluations:
                eid = int(e.id or 0)
                fig = row.figures.get(eid)
                line[self.labels[eid]] = _shown(fig)
                if eid != self.base_id:
                    d = row.delta(eid, self.base_id)
                    line[f"Δ {self.labels[eid]}"] = None if d is None else round(d, 4)
            out.append(line)
        return out


def _shown(fig: Figure | None) -> str:
    if fig is None or fig.value is None:
        return "—" if fig is None else f"n/a {fig.status}".strip()
    text = f"{fig.value:.3f}"
    if fig.ci_low is not None and fig.ci_high is not None:
        text += f" [{fig.ci_low:.3f}–{fig.ci_high:.3f}]"
    if fig.n is not None:
        text += f" n={fig.n:,}"
    return f"{text} {fig.status}".strip()


def _label(e: Evaluation) -> str:
    return f"#{e.id} r{e.round}"


def compare(session: Session, *, project: Project, evaluation_ids: list[int]) -> Comparison:
    """The evaluations picked (two or more, of this project, each report hash-checked) side by side."""
    ids = list(dict.fromkeys(evaluation_ids))
    if len(ids) < 2:
        raise InvalidInput("pick two or more evaluations to compare.", field="evaluations")
    evaluations = [runs.get_evaluation(session, project=project, evaluation_id=i) for i in ids]
    reports = {int(e.id or 0): runs.load_report(session, e) for e in evaluations}
    return Comparison(evaluations=evaluations, labels={int(e.id or 0): _label(e) for e in evaluations},
                      rows=_criteria_rows(reports) + _slice_rows(reports))


def _criteria_rows(reports: dict[int, EvaluationReport]) -> list[Row]:
    names = list(dict.fromkeys(c.name for r in reports.values() for c in r.criteria))
    rows = []
    for name in names:
        figures: dict[int, Figure | None] = {}
        for eid, report in reports.items():
            c = next((c for c in report.criteria if c.name == name), None)
            figures[eid] = None if c is None else Figure(c.value, c.ci_low, c.ci_high, c.n, c.status)
        rows.append(Row("criterion", name, figures))
    return rows


def _slice_rows(reports: dict[int, EvaluationReport]) -> list[Row]:
    keys = list(dict.fromkeys((s.column, s.value) for r in reports.values() for s in r.slices))
    rows = []
    for column, value in keys:
        figures: dict[int, Figure | None] = {}
        for eid, report in reports.items():
            s = next((s for s in report.slices if (s.column, s.value) == (column, value)), None)
            figures[eid] = None if s is None else Figure(s.student.accuracy, s.student.ci_low, s.student.ci_high,
                                                         s.n_labelled if s.n_labelled is not None else s.n)
        rows.append(Row("slice", f"{column}={value}: accuracy", figures))
    return rows
