"""A project shipped on a student distilled from a file teacher (an imported LLM's outputs): the case whose
fallback target the operator must choose before the rollout starts (core.rollout.fallback)."""

from __future__ import annotations

from pathlib import Path

from eval_helpers import teacher_run_with_holdout, trained_student
from review_helpers import approve
from serve_helpers import evaluation_of
from sqlmodel import Session

from core.decision import decision
from core.store.models import Evaluation, Project


def ship_file_student(session: Session, engine, demo: dict, project: Project, tmp_path: Path) -> Evaluation:
    """``project`` (gated) shipped on a student trained from an imported teacher run, threshold 0.5."""
    file_run = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    run = trained_student(session, engine, actor=demo["dana"], project=project, teacher_run=file_run)
    ev = evaluation_of(session, project=project, actor=demo["dana"], run=run)
    approve(session, demo, project, ev, threshold=0.5)
    decision.decide(session, actor=demo["sam"], project=project, decision="ship", rationale="passes the gate",
                    evaluation_id=ev.id)
    return ev
