"""The "evaluate" job: a finished student, its teacher and two baselines scored on the locked holdout.

Latency is measured on this machine. Cost per 1,000 requests: the teacher's from the latest qualification;
the student's by ``runs.cost_figures`` (the sponsor's figure, else measured compute, else an assumed share).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlmodel import Session

from core.data import datasets
from core.data.holdout import current as current_holdout
from core.data.holdout import holdout_rows
from core.domain.errors import InvalidInput
from core.domain.jobs import EvaluateParams, EvaluateResult
from core.evaluation import baselines, report, runs, teacher_bar
from core.evaluation.latency import Timed, timing_sample
from core.gate import gate
from core.store import vouched
from core.store.jobs import JobContext, handler
from core.store.models import Job, Project, TeacherRun, TrainingRun, User
from core.teacher import model_files
from core.teacher import runs as teacher_runs
from core.teacher.config import LocalConfig, read_config
from core.teacher.local import LocalAdapter
from core.teacher.python import PythonAdapter, PythonConfig, is_allowed
from core.training import pool
from core.training import runs as training_runs


def _speed(speed) -> dict:
    return {"p50_ms": speed.single_p50_ms, "p95_ms": speed.single_p95_ms,
            "batch_throughput": speed.examples_per_s, "ms_per_example": speed.ms_per_example}


def _live_teacher(teacher_run: TeacherRun):
    """The teacher, when it runs here, to answer the holdout now and be timed: a local model, or a Python callable
    the admin still lists (checked again by PythonAdapter before its module is imported). None for the others,
    and for a callable taken off the list since its run: then its stored answers stand and nothing runs."""
    if teacher_run.adapter not in ("local", "python"):
        return None
    config = read_config(teacher_run)
    if isinstance(config, LocalConfig):
        return LocalAdapter(model_files.of_run(teacher_run), batch_size=config.batch_size or 64,
                            device=config.device)
    if isinstance(config, PythonConfig) and is_allowed(config.callable):
        return PythonAdapter(config, labels=list(config.labels or teacher_run.labels))
    return None


def teacher_answers(s: Session, teacher_run: TeacherRun, held: pd.DataFrame, adapter) -> pd.DataFrame:
    """(teacher_label, teacher_confidence) per holdout row: the teacher run now where it runs here, else its
    stored outputs. A confidence is the teacher's own (NaN where it gave only a label)."""
    if adapter is not None:
        answers = adapter.predict(held["text"].astype(str).tolist())
        return pd.DataFrame({"teacher_label": [a.label for a in answers],
                             "teacher_confidence": [np.nan if a.confidence is None else float(a.confidence)
                                                    for a in answers]})
    out = teacher_runs.load_outputs(s, teacher_run).astype({"id": str}).drop_duplicates("id").set_index("id")
    ids = held["id"].astype(str)
    conf = out["confidence"] if "confidence" in out.columns else pd.Series(np.nan, index=out.index)
    return pd.DataFrame({"teacher_label": ids.map(out["label"]).astype("object").to_numpy(),
                         "teacher_confidence": ids.map(conf).astype(float).to_numpy()})


def _baselines(s: Session, project: Project, run: TrainingRun, teacher_run: TeacherRun, texts: list[str]) -> dict:
    _, teacher_filter = pool.teacher_source(s, project=project, teacher_run_id=teacher_run.id,
                                            filter_id=run.teacher_filter_id)
    data, _ = pool.training_rows(s, project=project, teacher_run=teacher_run, teacher_filter=teacher_filter)
    y = baselines.targets(reference=data.reference, teacher_label=data.teacher_label, labels=data.labels)
    return {"majority": baselines.majority(y, texts).predictions,
            "tfidf": baselines.tfidf(data.texts, y, texts).predictions}


def measure_latency(student, adapter, sample: list[str]) -> dict:
    """Single-request p50/p95 and batched throughput on this machine; the teacher only when it runs here (a local
    model, or a listed Python callable)."""
    from core.ml import students  # lazy: imports torch

    return {"student": _speed(students.measure_speed(student, sample, singles=100, rounds=1)),
            "teacher": _speed(students.measure_speed(Timed(adapter), sample, singles=50, rounds=1))
            if adapter is not None else report.NOT_MEASURED}


@handler(runs.JOB_KIND, params=EvaluateParams, result=EvaluateResult)
def evaluate(ctx: JobContext) -> EvaluateResult:
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor = vouched.one(s, User, s.get(Job, ctx.job_id).created_by)
        project = s.get(Project, ctx.project_id)
        locked = runs.require_can_evaluate(s, actor=actor, project=project)
        run = runs.finished_run(s, project=project, training_run_id=ctx.read(EvaluateParams).training_run_id)
        teacher_run = s.get(TeacherRun, run.teacher_run_id)
        ctx.progress(0.02, "loading the holdout", force=True)
        held = holdout_rows(s, project_id=project.id).reset_index(drop=True)
        holdout = current_holdout(s, project_id=project.id)
        spec = gate.spec_of(locked)
        texts = held["text"].astype(str).tolist()

        ctx.progress(0.1, "the student predicts the holdout", force=True)
        student = training_runs.load_student(s, run)
        probs = student.predict_proba(texts)
        ctx.progress(0.35, "the teacher answers the holdout", force=True)
        adapter = _live_teacher(teacher_run)
        teacher = teacher_answers(s, teacher_run, held, adapter)
        ctx.progress(0.55, "training the baselines", force=True)
        base = _baselines(s, project, run, teacher_run, texts)

        ctx.progress(0.7, "measuring latency", force=True)
        latency = measure_latency(student, adapter, timing_sample(texts))
        ctx.progress(0.85, "scoring against the gate", force=True)
        slices = datasets.slice_columns(held)
        predictions = predictions_table(held, slices, teacher, student.labels, probs)
        predictions["severe"] = report.severe_flags(predictions, spec.severe_errors.classes)
        scored = report.score(predictions, spec=spec, slices=slices, labels=list(student.labels), baselines=base)
        meta = {"project_id": project.id, "round": runs.current_round(s, project_id=project.id),
                "gate_version": locked.version, "gate_hash": locked.content_hash,
                "training_run_id": run.id, "teacher_run_id": teacher_run.id, "source": "trained",
                "holdout_fingerprint": holdout.fingerprint, "holdout_version": holdout.version, "n": len(held)}
        body, _ = report.assemble(scored, spec=spec, evaluation=meta, latency=latency,
                                  teacher=teacher_bar.of_run(s, teacher_run),
                                  cost=runs.cost_figures(s, project_id=project.id, latency=latency))
        ev = runs.record(s, actor=actor, project=project, gate_version=locked, predictions=predictions,
                         report=body, summary=report.summary(body), source="trained", training_run_id=run.id,
                         job_id=ctx.job_id)
    ctx.progress(1.0, f"evaluation #{ev.id}: {'passed' if ev.passed else 'failed'} the gate", force=True)
    return EvaluateResult(evaluation=ev.id, passed=ev.passed, report_hash=ev.report_hash)


def predictions_table(held: pd.DataFrame, slices: list[str], teacher: pd.DataFrame, labels: list[str],
                      probs: np.ndarray) -> pd.DataFrame:
    if len(probs) != len(held):
        raise InvalidInput(f"the student returned {len(probs)} answers for {len(held)} holdout rows.", field="run")
    best = probs.argmax(axis=1)
    ref = held["reference"] if "reference" in held.columns else pd.Series([None] * len(held))
    frame = pd.DataFrame({
        "id": held["id"].astype(str), "text": held["text"].astype(str),
        "reference": ref.astype("object").where(ref.notna(), None),
        "teacher_label": teacher["teacher_label"].astype("object").where(teacher["teacher_label"].notna(), None),
        "teacher_confidence": teacher["teacher_confidence"].astype(float),
        "student_label": [labels[i] for i in best], "student_confidence": probs.max(axis=1).astype(float),
        "severe": False,
    })
    for c in slices:
        frame[c] = held[c].astype("object").where(held[c].notna(), None)
    return frame
