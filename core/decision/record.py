"""The decision record: a project's story from trigger to decision, as Markdown or one offline HTML file.

Gathering (``gather``) is separate from drawing (``to_markdown``, ``to_html``). The record ends with the
audit chain's head hash, so anyone can later check that the chain it summarises was not rewritten.
Exporting changes nothing and so records no audit event (which would move the head it quotes).
"""

from __future__ import annotations

import hashlib
import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, func, select

from core.access import visibility
from core.access.projects import can_view
from core.decision import decision
from core.domain.choices import RECORD_FORMATS
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.requests import read_data_request
from core.domain.textsafe import html_text, markdown_text
from core.evaluation import rounds
from core.evaluation.runs import load_report
from core.gate import gate
from core.qualify import qualification
from core.review import review
from core.store import artifacts, audit, integrity, vouched
from core.store.models import (
    Artifact,
    AuditEvent,
    Dataset,
    Decision,
    Evaluation,
    Holdout,
    Project,
    ReviewVerdict,
    SignOff,
    ThresholdProposal,
    TrainingRun,
    User,
)

FORMATS = RECORD_FORMATS


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list]


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass(frozen=True)
class Record:
    project: Project
    generated_at: str
    sections: list[Section]
    rounds: list[decision.RoundSummary]
    head_hash: str
    n_events: int


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, datetime):
        return x.isoformat(timespec="seconds")
    return str(x)


def _rows(session: Session, model, project_id: int) -> list:
    return list(session.exec(select(model).where(model.project_id == project_id).order_by(col(model.id))).all())


def _trigger(session: Session, project: Project) -> Section:
    quals = qualification.history(session, project_id=project.id)
    s = Section("Trigger (qualification)")
    if not quals:
        s.lines.append("The trigger has not been qualified.")
        return s
    s.tables.append(Table(["version", "verdict", "recommendation", "first payback estimate (months)", "rationale",
                           "recorded"],
                          [[q.version, q.verdict, q.recommendation, q.payback_months, q.rationale, q.recorded_at]
                           for q in quals]))
    inputs = qualification.inputs_of(quals[-1])
    s.lines += [f"Play: {inputs.play}. Evidence: {inputs.evidence}"]
    s.lines += list(quals[-1].reasons)
    return s


def _gates(session: Session, project: Project) -> Section:
    s = Section("Success gate versions")
    s.tables.append(Table(["version", "content hash", "supersedes", "hash verified", "reason", "locked"],
                          [[g.version, g.content_hash, g.supersedes_hash, integrity.verify_gate(g), g.reason,
                            g.locked_at] for g in gate.history(session, project_id=project.id)]))
    return s


def _data(session: Session, project: Project) -> Section:
    s = Section("Data audit")
    shas = {a.id: a.sha256 for a in _rows(session, Artifact, project.id)}
    s.tables.append(Table(["dataset", "name", "purpose", "operation", "rows", "parent", "sha256"],
                          [[d.id, d.name, d.purpose, d.operation, d.n_rows, d.parent_id, shas.get(d.artifact_id)]
                           for d in _rows(session, Dataset, project.id)]))
    h = session.exec(select(Holdout).where(Holdout.project_id == project.id)).first()
    s.lines.append(f"Holdout: {h.n_rows} rows of dataset #{h.dataset_id}, fingerprint {h.fingerprint}, "
                   f"stratified by {', '.join(h.stratify_by) or 'nothing'}, seed {h.seed}."
                   if h else "No holdout has been fixed.")
    return s


def _gate_labels(session: Session, project: Project) -> dict[int | None, str]:
    """Each gate version's row id to the label people know it by ("v1"), as the gate section shows it."""
    return {g.id: f"v{g.version}" for g in gate.history(session, project_id=project.id)}


def _training(session: Session, project: Project) -> Section:
    runs, labels = _rows(session, TrainingRun, project.id), _gate_labels(session, project)
    # What each student started from (config, teacher layers, a pretrained encoder named by the SHA-256 of its
    # files, or pre-trained here on N texts for S steps): core.ml.init.StudentStart, recorded by the run.
    return Section("Training runs", lines=[f"Run #{r.id} trained with {r.metrics['losses']}." for r in runs
                                           if (r.metrics or {}).get("losses")], tables=[Table(
        ["run", "family", "size", "status", "epochs", "best val loss", "val agreement", "gate version",
         "started from", "encoder sha256"],
        [[r.id, r.family, r.size, r.status, r.epochs_done, r.best_val_loss, r.metrics.get("val_agreement"),
          labels.get(r.gate_version_id), r.metrics.get("init"), (r.metrics.get("start") or {}).get("sha256")]
         for r in runs])])


def _report_intact(evaluation: Evaluation, art: Artifact | None) -> bool:
    path = artifacts.path_of(art) if art else None
    return bool(path and path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == evaluation.report_hash)


def _evaluations(session: Session, project: Project, evs: list[Evaluation]) -> Section:
    s = Section("Evaluations")
    named = {d.evaluation_id: f"{d.decision} (decision #{d.id})"
             for d in rounds.decisions(session, project_id=project.id) if d.evaluation_id is not None}
    labels = _gate_labels(session, project)
    s.tables.append(Table(["evaluation", "round", "source", "gate version", "report hash", "report intact",
                           "passed", "decided"],
                          [[e.id, e.round, e.source, labels.get(e.gate_version_id), e.report_hash,
                            _report_intact(e, session.get(Artifact, e.report_artifact_id)), e.passed,
                            named.get(e.id)]
                           for e in evs]))
    s.tables.append(Table(["evaluation", "criterion", "status", "value", "threshold", "n", "source"],
                          [[e.id, c.get("name"), c.get("status"), c.get("value"), c.get("threshold"), c.get("n"),
                            c.get("source") or "not recorded"] for e in evs for c in e.summary.get("criteria", [])]))
    for e in evs:  # imported students: whose latency figures these are, and which holdout version judged them
        if e.summary.get("latency_source"):
            s.lines.append(f"Evaluation #{e.id} ({e.source}, holdout version {e.summary.get('holdout_version') or 1}): "
                           f"student latency {e.summary['latency_source']}.")
    return s


def _reviews(session: Session, project: Project, evs: list[Evaluation], names: dict[int, str],
             viewer: User) -> Section:
    """Verdicts per evaluation; their content only as far as blind review lets ``viewer`` see it."""
    s = Section("Reviews")
    verdicts = _rows(session, ReviewVerdict, project.id)
    rows = []
    for e in evs:
        mine = [v for v in verdicts if v.evaluation_id == e.id]
        if not mine:
            continue
        seen = visibility.visible_verdicts(session, viewer=viewer, evaluation_id=e.id)
        counts = Counter(v.verdict for v in seen)
        kappas = "; ".join(f"{p.validator_a}/{p.validator_b}: "
                           f"{'undefined' if p.kappa is None else f'{p.kappa:.3f}'} on {p.n_items}"
                           for p in review.agreement(session, evaluation_id=e.id, viewer=viewer))
        hidden = len(mine) - len(seen)
        by_verdict = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        if hidden:
            by_verdict = (by_verdict + "; " if by_verdict else "") + (
                f"{hidden} hidden until you review those items or a validator approves (blind review)")
        rows.append([e.id, len(mine), ", ".join(sorted({names.get(v.validator_id, '?') for v in mine})),
                     by_verdict, kappas or ("one validator" if len({v.validator_id for v in mine}) < 2
                                            else "hidden until sign-off (blind review)")])
    s.tables.append(Table(["evaluation", "verdicts", "validators", "by verdict", "Cohen's kappa"], rows))
    return s


def _signoffs(session: Session, project: Project, names: dict[int, str]) -> Section:
    return Section("Sign-offs", tables=[Table(
        ["evaluation", "validator", "approve", "evaluation hash", "comment", "when"],
        [[s.evaluation_id, names.get(s.validator_id), s.approve, s.evaluation_hash, s.comment, s.created_at]
         for s in vouched.rows(session, SignOff, SignOff.project_id == project.id, order_by=col(SignOff.id))])])


def _thresholds(session: Session, project: Project, names: dict[int, str]) -> Section:
    return Section("Fallback threshold proposals", tables=[Table(
        ["evaluation", "by", "threshold", "served share", "student accuracy", "fallback rate", "blended cost per 1k",
         "choice"],
        [[t.evaluation_id, names.get(t.created_by), t.threshold, t.served_share, t.student_accuracy,
          t.fallback_rate, t.blended_cost_per_1k, review.choice_of(t)]
         for t in vouched.rows(session, ThresholdProposal, ThresholdProposal.project_id == project.id,
                               order_by=col(ThresholdProposal.id))])])


def _request_text(d: Decision) -> str:
    request = read_data_request(d.data_request, decision_id=d.id)
    return "; ".join(w.sentence() for w in request.slices) if request else ""


def _decisions(session: Session, project: Project, names: dict[int, str]) -> Section:
    s = Section("Decisions")
    s.tables.append(Table(["round", "decision", "by", "rationale", "evaluation", "evaluation hash",
                           "data request", "when"],
                          [[d.round, d.decision, names.get(d.created_by), d.rationale, d.evaluation_id,
                            d.evaluation_hash, _request_text(d), d.created_at]
                           for d in vouched.rows(session, Decision, Decision.project_id == project.id,
                                                 order_by=col(Decision.id))]))
    kill = decision.kill_recommendation([r.criteria for r in decision.rounds_history(session, project_id=project.id)])
    if kill:
        s.lines.append(f"Recommendation: {kill.reason}")
    shown = decision.evaluation_in_view(session, project_id=project.id)  # the decided one, once decided
    if shown is not None:
        try:
            report = load_report(session, shown)
        except GovernanceViolation:
            report = None  # the Evaluations section already says the report is not intact
        if report is not None:
            paid = decision.payback(session, project=project, evaluation=shown, report=report).criterion
            s.lines.append(f"Payback of evaluation #{shown.id} at its proposed threshold, computed now "
                           f"({paid.status}): {paid.detail}")
    return s


def gather(session: Session, *, actor: User, project: Project) -> Record:
    """Everything the record holds, read in one session (anyone with a role on the project)."""
    can_view(session, user=actor, project=project)
    names = {u.id: u.username for u in vouched.rows(session, User)}
    evs = _rows(session, Evaluation, project.id)
    sections = [
        _trigger(session, project), _gates(session, project), _data(session, project),
        _training(session, project), _evaluations(session, project, evs),
        _reviews(session, project, evs, names, actor), _signoffs(session, project, names),
        _thresholds(session, project, names), _decisions(session, project, names),
    ]
    n_events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    return Record(project=project, generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  sections=sections, rounds=decision.rounds_history(session, project_id=project.id),
                  head_hash=audit.head_hash(session), n_events=n_events)


# --------------------------------------------------------------------------- drawing


def _chain_line(rec: Record) -> str:
    return (f"Audit chain head hash: {rec.head_hash} ({rec.n_events} events when this record was made; "
            f"check it with `stillroom audit verify --expect-head {rec.head_hash}`).")


def _md_cell(x) -> str:
    # User text (names, labels, slice values, comments) is shown as typed: no HTML, links or formulas.
    return markdown_text(_fmt(x))


def to_markdown(rec: Record) -> str:
    out = [f"# Decision record: {_md_cell(rec.project.name)}", "",
           f"Generated {rec.generated_at}. {_md_cell(rec.project.description)}", ""]
    for s in rec.sections:
        out += [f"## {s.title}", ""]
        out += [f"- {_md_cell(line)}" for line in s.lines]
        for t in s.tables:
            if not t.rows:
                out.append("_None recorded._")
                continue
            out += ["", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
        out.append("")
    out += ["## Audit chain", "", _chain_line(rec), ""]
    return "\n".join(out)


def rounds_figure(rounds: list[decision.RoundSummary]):
    """Criteria values by round, one line per criterion."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = list(dict.fromkeys(c.get("name") for r in rounds for c in r.criteria))
    for name in names:
        points = [(r.round, c.get("value")) for r in rounds for c in r.criteria if c.get("name") == name]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                 name=html.escape(str(name))))
    fig.update_layout(title="Criteria by round", xaxis_title="round", yaxis_title="value",
                      xaxis={"dtick": 1}, height=380, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


def _html_table(t: Table) -> str:
    if not t.rows:
        return "<p><em>None recorded.</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{html_text(_fmt(c))}</td>" for c in r) + "</tr>" for r in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top;"
        "word-break:break-all}th{background:#f3f3f3}code{font-size:.85rem}")


def to_html(rec: Record) -> str:
    """One self-contained file: plotly.js is inlined, so the record opens offline."""
    parts = [f"<h1>Decision record: {html_text(rec.project.name)}</h1>",
             f"<p>Generated {html.escape(rec.generated_at)}. {html_text(rec.project.description)}</p>"]
    for s in rec.sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.lines:
            parts.append("<ul>" + "".join(f"<li>{html_text(line)}</li>" for line in s.lines) + "</ul>")
        parts += [_html_table(t) for t in s.tables]
        if s.title == "Decisions" and rec.rounds:
            parts.append(rounds_figure(rec.rounds).to_html(full_html=False, include_plotlyjs=True))
    parts += ["<h2>Audit chain</h2>", f"<p><code>{html.escape(_chain_line(rec))}</code></p>"]
    title = "Decision record: " + html_text(rec.project.name)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def export(session: Session, *, actor: User, project: Project, fmt: str) -> str:
    """The record as text in ``fmt`` (md or html)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not one of md, html.", field="format")
    rec = gather(session, actor=actor, project=project)
    return to_markdown(rec) if fmt == "md" else to_html(rec)
