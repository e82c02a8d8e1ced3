"""Evaluations: started by the driver as a job on a finished training run, stored with their hash, read back
hash-checked by the review and decision side.

An evaluation is scored against the gate locked when it ran; ``is_superseded`` says when that gate has
since been replaced by a newer version.
"""

from __future__ import annotations

import os
import uuid

import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.domain import economics
from core.domain.errors import GovernanceViolation, InvalidInput, NotFound
from core.domain.hashing import canonical_json, sha256_hex
from core.domain.jobs import EvaluateParams
from core.domain.report import EvaluationReport
from core.domain.roles import Role
from core.evaluation.rounds import require_open_round
from core.gate import gate
from core.notify.inbox import notify
from core.notify.rules import Kind
from core.qualify import qualification
from core.store import audit, jobs, vouched
from core.store.artifacts import load_table, path_of, project_dir, register, store_table, track_new_file, verify
from core.store.models import Artifact, Evaluation, GateVersion, Job, Project, TrainingRun, User
from core.training import pool

JOB_KIND = jobs.JobKind.EVALUATE
REPORT_KIND = "evaluation-report"
PREDICTIONS_KIND = "evaluation-predictions"


def require_can_evaluate(session: Session, *, actor: User, project: Project) -> GateVersion:
    """The gate an evaluation is scored against; only the driver evaluates, only under a locked gate and holdout,
    and only while a round is open (refused before any work once a ship or kill closed the project)."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="evaluate students")
    locked = gate.require_locked(session, project=project, doing="evaluating a student")
    pool.require_holdout(session, project=project)
    current_round(session, project_id=project.id)
    return locked


def finished_run(session: Session, *, project: Project, training_run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, training_run_id)
    if run is None or run.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no training run #{training_run_id}: pick one from "
                       "`stillroom train runs`.", field="run")
    if run.status != "done":
        raise InvalidInput(f"training run #{run.id} is {run.status}: only a finished run can be evaluated.",
                           field="run")
    return run


def start_evaluation(session: Session, *, actor: User, project: Project, training_run_id: int) -> Job:
    """Queue the evaluation of a finished training run as a job of kind "evaluate"."""
    require_can_evaluate(session, actor=actor, project=project)
    finished_run(session, project=project, training_run_id=training_run_id)
    return jobs.submit(session, actor=actor, project=project, kind=JOB_KIND,
                       params=EvaluateParams(training_run_id=training_run_id))


def current_round(session: Session, *, project_id: int) -> int:
    """The round a new evaluation joins; RoundClosed once a ship or kill closed the project
    (``core.evaluation.rounds.require_open_round`` owns the rule)."""
    return require_open_round(session, project=session.get(Project, project_id))


def cost_figures(session: Session, *, project_id: int, latency: dict) -> dict:
    """Cost per 1,000 requests, with its source, as ``core.domain.economics.student_cost`` prices it: the teacher's
    from the latest qualification; the student's declared there, else scaled by the compute measured on this
    machine when the teacher ran here, else an assumed share of the teacher's."""
    q = qualification.latest(session, project_id=project_id)
    inputs = (q.inputs if q else {}) or {}
    recorder = vouched.get(session, User, q.recorded_by) if getattr(q, "recorded_by", None) else None
    t, st = latency.get("teacher") or {}, latency.get("student") or {}
    return economics.student_cost(
        teacher_per_1k=inputs.get("teacher_cost_per_1k"), declared_per_1k=inputs.get("student_cost_per_1k"),
        declared_by=recorder.username if recorder else "", teacher_ms=t.get("ms_per_example"),
        student_ms=st.get("ms_per_example")).as_report()


def _write_report(project: Project, report: EvaluationReport) -> tuple[str, bytes]:
    body = canonical_json(report.stored_json()).encode("utf-8")
    folder = project_dir(project.id, "evaluations")
    name = f"report-{uuid.uuid4().hex[:12]}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(body)
    os.replace(tmp, folder / name)
    return str(folder / name), body


def record(session: Session, *, actor: User, project: Project, gate_version: GateVersion, predictions: pd.DataFrame,
           report: EvaluationReport, summary: dict, source: str, training_run_id: int | None = None,
           job_id: int | None = None) -> Evaluation:
    """Store the predictions and the report, and add the Evaluation row and its audit event, in one transaction.
    Refused (RoundClosed) when the round the report was made for was decided meanwhile: a decided round never
    gains an evaluation."""
    require_open_round(session, project=project, started_in=report.evaluation.round)
    try:
        preds = store_table(session, project=project, actor=actor, df=predictions, kind=PREDICTIONS_KIND,
                            meta={"source": source, "training_run": training_run_id})
        report_path, body = _write_report(project, report)
        track_new_file(session, report_path)
        art = register(session, project=project, actor=actor, path=report_path, kind=REPORT_KIND,
                       meta={"source": source})
        row = Evaluation(project_id=project.id, round=report.evaluation.round, gate_version_id=gate_version.id,
                         training_run_id=training_run_id, source=source, job_id=job_id,
                         predictions_artifact_id=preds.id, report_artifact_id=art.id,
                         report_hash=sha256_hex(body.decode("utf-8")), passed=report.passed,
                         summary=summary, created_by=actor.id)
        session.add(row)
        session.flush()
        audit.record(session, actor=actor, action="evaluation.record", entity="evaluation", entity_id=row.id,
                     project_id=project.id,
                     payload={"source": source, "training_run": training_run_id, "round": row.round,
                              "gate_version": gate_version.version, "gate_hash": gate_version.content_hash,
                              "report_hash": row.report_hash, "predictions_sha256": preds.sha256,
                              "passed": row.passed, "failing": summary.get("failing", [])})
        notify(session, kind=Kind.EVALUATION_READY, project_id=project.id, actor=actor, evaluation_id=row.id,
               detail=f"round {row.round}, {source}")
        session.commit()
        return row
    except BaseException:
        session.rollback()  # and core.store.artifacts removes the file this transaction wrote
        raise


def get_evaluation(session: Session, *, project: Project, evaluation_id: int) -> Evaluation:
    row = session.get(Evaluation, evaluation_id)
    if row is None or row.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no evaluation #{evaluation_id}: list them with "
                       "`stillroom eval list`.", field="evaluation")
    return row


def list_evaluations(session: Session, *, project_id: int) -> list[Evaluation]:
    return list(session.exec(
        select(Evaluation).where(Evaluation.project_id == project_id).order_by(col(Evaluation.id))).all())


def load_predictions(session: Session, evaluation: Evaluation) -> pd.DataFrame:
    """The per-example table, hash-checked."""
    return load_table(session.get(Artifact, evaluation.predictions_artifact_id))


def load_report(session: Session, evaluation: Evaluation) -> EvaluationReport:
    """The report, refused unless its bytes still hash to the evaluation's report_hash; the bytes as stored are
    hashed, then validated into the typed report (an old report's missing parts read as their defaults)."""
    art = session.get(Artifact, evaluation.report_artifact_id)
    verify(art)
    body = path_of(art).read_bytes()
    if sha256_hex(body.decode("utf-8")) != evaluation.report_hash:
        raise GovernanceViolation(f"the report of evaluation #{evaluation.id} no longer matches its recorded hash: "
                                  "restore the original file from backup.")
    return EvaluationReport.model_validate_json(body)


def without_confidence(predictions: pd.DataFrame) -> int:
    """Answered rows whose student gave no confidence: no fallback threshold serves them, the teacher does."""
    conf = pd.to_numeric(predictions["student_confidence"], errors="coerce")
    answered = predictions["answered"].astype(bool) if "answered" in predictions.columns else True
    return int((conf.isna() & answered).sum())


def serve_every_answer_hint(command: str) -> str:
    """The one way to ship answers without confidence, in words: the operator's explicit, recorded choice."""
    return (f"if serving them without a fallback is acceptable, an operator or validator records \"serve every "
            f"answer\" (threshold 0, no fallback) with `{command}` or on the Review page")


def confidence_note(*, missing: int, answered: int) -> str | None:
    """What answers without confidence mean, said when predictions are imported; None when every answer has one."""
    if not missing:
        return None
    every = missing >= answered
    which = f"the student's {answered:,} answers carry" if every else (
        f"{missing:,} of the student's {answered:,} answers carry")
    falls = ("every answer falls back to the teacher, so the student never pays back and ship is refused" if every
             else "those answers fall back to the teacher")
    hint = serve_every_answer_hint("stillroom review threshold PROJECT EVALUATION --serve-every-answer")
    return (f"No confidence: {which} no confidence, so Stillroom cannot tell a sure answer from a guess: at any "
            f"fallback threshold {falls}. {hint[0].upper()}{hint[1:]}.")


def gate_of(session: Session, evaluation: Evaluation) -> GateVersion:
    """The gate the evaluation was scored against, or GateTampered when it was changed since."""
    return vouched.one(session, GateVersion, evaluation.gate_version_id)


def is_superseded(session: Session, evaluation: Evaluation) -> bool:
    """True when the project's gate has a newer version than the one this evaluation was scored against."""
    latest = gate.current(session, project_id=evaluation.project_id)
    return latest is not None and latest.id != evaluation.gate_version_id
