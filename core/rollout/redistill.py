"""Re-distillation: when live traffic drifts from the training data or agreement with the teacher falls,
the operator opens a new round whose data request names the drifted slices and how many examples to collect.

The request log holds hashes, not texts, so the request says what to collect rather than carrying rows.
"""

from __future__ import annotations

import math

from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.decision.decision import MIN_EXTRA_EXAMPLES
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.requests import DriftFeature, DriftSlice, RedistillDrift
from core.domain.roles import Role
from core.domain.stored import stored_json
from core.rollout import config, drift, logs
from core.store import audit
from core.store.models import Project, RedistillRequest, User


def _drift_slices(report: drift.DriftReport) -> list[DriftSlice]:
    """Slice values over-represented live: enough examples for the training set to hold them at their live
    share (live share x training rows - training rows of the value)."""
    out = []
    for f in report.features:
        if f.kind != "categorical" or f.status not in ("warn", "alert"):
            continue
        for b in f.bins:
            wanted = math.ceil(round(b["live_share"] * f.n_reference, 6)) - b["reference_n"]
            if b["live_share"] > b["reference_share"] and wanted > 0:
                out.append(DriftSlice(column=f.feature.removeprefix("slice:"), value=b["bin"],
                                      live_share=round(b["live_share"], 4),
                                      training_share=round(b["reference_share"], 4),
                                      examples_wanted=wanted, why=f"PSI {f.psi:.3f} ({f.status})"))
    return out


def _agreement_slices(live, floor: float, min_asked: int, known: set) -> list[DriftSlice]:
    out = []
    for row in logs.slice_agreement(live).itertuples():
        if row.asked >= min_asked and row.agreement < floor and (row.column, row.value) not in known:
            share = row.requests / len(live)
            out.append(DriftSlice(column=row.column, value=row.value, live_share=round(share, 4),
                                  training_share=None, examples_wanted=max(MIN_EXTRA_EXAMPLES, row.asked),
                                  why=f"agreement {row.agreement:.3f} under the floor {floor:.3f}"))
    return out


def open_redistill(session: Session, *, actor: User, project: Project, reason: str,
                   since=None) -> RedistillRequest:
    """Open a re-distillation round (operator only), refused unless drift is at alert or agreement fell."""
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="open a re-distillation round")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a re-distillation round needs a reason: say what changed, in a sentence.",
                           field="reason")
    settings = config.get_config(session, project_id=project.id)
    floor = config.agreement_floor(session, project_id=project.id, settings=settings)
    live = logs.read_requests(project.id, since=since)
    report = drift.drift_report(session, project_id=project.id, live=live)
    agreement = logs.agreement(live)
    triggers = [f"{f.feature} PSI {f.psi:.3f} >= {settings.psi_alert:g}" for f in report.alerts()]
    if agreement is not None and agreement < floor:
        triggers.append(f"sampled agreement {agreement:.3f} < floor {floor:.3f}")
    if not triggers:
        top = report.worst()
        worst = f"the highest PSI is {top.psi or 0:.3f} ({top.feature})" if top else "no drift could be measured"
        said = "no agreement was sampled" if agreement is None else f"sampled agreement is {agreement:.3f}"
        raise GovernanceViolation(
            f"Re-distillation refused for project {project.name!r}: no drift feature is at alert "
            f"(PSI >= {settings.psi_alert:g}; {worst}) and {said}, not under the floor {floor:.3f}.")
    slices = _drift_slices(report)
    slices += _agreement_slices(live, floor, settings.min_slice_requests, {(s.column, s.value) for s in slices})
    request = RedistillDrift(
        triggers=triggers, since=None if since is None else str(since), n_live=len(live),
        reference=report.reference, agreement=agreement, agreement_floor=floor,
        features=[DriftFeature(feature=f.feature, psi=f.psi, js=f.js, status=f.status) for f in report.features],
        slices=slices)
    row = RedistillRequest(project_id=project.id, reason=reason, drift=stored_json(request), created_by=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="redistill.open", entity="redistill_request", entity_id=row.id,
                 project_id=project.id, payload={"reason": reason, "triggers": triggers,
                                                 "slices": row.drift["slices"]})
    session.commit()
    return row


def list_redistill(session: Session, project_id: int) -> list[RedistillRequest]:
    return list(session.exec(select(RedistillRequest).where(RedistillRequest.project_id == project_id)
                             .order_by(col(RedistillRequest.id))).all())


def wanted(request: RedistillRequest) -> str:
    """The slices a re-distillation request asks the driver to collect, as the data pages show them."""
    return ", ".join(f"{s['column']}={s['value']} ({s.get('examples_wanted', '?')} examples)"
                     for s in request.drift.get("slices", []))
