"""The demo's slow part, as the "demo-setup" job: train the teacher, label the tickets, filter.

Kept apart from core.demo so seeding (and every CLI call that imports it) stays light.
"""

from __future__ import annotations

import time
from typing import TypeVar

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from core.demo import tickets as demo_tickets
from core.demo.seed import SETUP_JOB
from core.demo.teacher import TEACHER_SEED, THREADS, default_dir, deterministic, train_teacher
from core.domain.jobs import EvaluateResult, TrainResult
from core.evaluation import jobs as evaluate_job  # noqa: F401 (registers the "evaluate" job run here)
from core.evaluation import runs as evaluations
from core.store import jobs, vouched
from core.store.jobs import JobContext, handler
from core.store.models import Job, Project, User
from core.teacher import filter as tfilter
from core.teacher import jobs as teacher_job  # noqa: F401 (registers the "teacher-run" job run here)
from core.teacher import runs as teacher_runs
from core.teacher.config import TeacherRunResult
from core.training import jobs as train_job  # noqa: F401 (registers the "train" job run here)
from core.training import runs as training

M = TypeVar("M", bound=BaseModel)

# Shares of the progress bar: teacher training, labelling, the first student, its evaluation.
SHARES = (0.70, 0.15, 0.08, 0.07)
STUDENT = {"family": "ngram", "size": "tiny", "epochs": 6}
MIN_KEPT = 100


def _actor_project(s: Session, ctx: JobContext) -> tuple[User, Project]:
    return vouched.one(s, User, s.get(Job, ctx.job_id).created_by), s.get(Project, ctx.project_id)


def _run_child(ctx: JobContext, job_id: int, start: float, share: float, what: str, result: type[M]) -> M:
    """Run a job this one queued, in this process, its progress drawn on this job's bar; its result typed."""
    done = jobs.run(job_id, engine=ctx.engine, on_progress=lambda f, m: ctx.progress(start + share * f, f"{what}: {m}"))
    return jobs.result_as(done, result)


class SetupParams(BaseModel):
    """The "demo-setup" job: the deduplicated prompts to label, the teacher's size, how many tickets it learns from."""

    model_config = ConfigDict(extra="forbid")
    dataset_id: int
    size: str = "teacher"
    n: int | None = None


class SetupResult(BaseModel):
    teacher_accuracy: float
    teacher_dir: str
    teacher_run: int
    filter: int
    training_run: int
    evaluation: int
    # The whole job's wall clock and this process's CPU time (what the README's figure for the demo is).
    seconds: float = 0.0
    cpu_seconds: float = 0.0


@handler(SETUP_JOB, params=SetupParams, result=SetupResult)
def setup_job(ctx: JobContext) -> SetupResult:
    """Train the demo teacher, label the tickets with it and filter its errors, then distil a first student
    and evaluate it, so every role finds something to look at.

    All of it on one thread with torch's deterministic algorithms, so the evaluation (the README's story of
    the demo, checked by tests/demo/test_demo_story.py) comes out the same on every run and machine."""
    params = ctx.read(SetupParams)
    started, cpu_started = time.monotonic(), time.process_time()
    with deterministic(THREADS):
        result = _setup(ctx, params)
    return result.model_copy(update={"seconds": round(time.monotonic() - started, 1),
                                     "cpu_seconds": round(time.process_time() - cpu_started, 1)})


def _setup(ctx: JobContext, params: SetupParams) -> SetupResult:
    teach, label, distil, _ = SHARES
    ctx.progress(0.0, "generating the teacher's own tickets", force=True)
    tickets = demo_tickets.generate(params.n or demo_tickets.DEFAULT_N, TEACHER_SEED)
    result = train_teacher(tickets, default_dir(), size=params.size,
                           progress=lambda f, m: ctx.progress(teach * f, f"training the teacher: {m}"))
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor, project = _actor_project(s, ctx)
        job = teacher_runs.start_run(s, actor=actor, project=project, dataset_id=params.dataset_id,
                                     adapter="local", config={"model_dir": str(result.path)})
    run_id = _run_child(ctx, job.id, teach, label, "the teacher labels the tickets", TeacherRunResult).teacher_run
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor, project = _actor_project(s, ctx)
        filt = tfilter.apply_filter(s, actor=actor, project=project, run_id=run_id,
                                    policy=tfilter.FilterPolicy(min_confidence=0.5, drop_reference_disagreement=True))
        # A teacher too weak for the filter to leave rows (a tiny one, in tests) teaches from all its outputs.
        use = filt.id if filt.counts["kept"] >= MIN_KEPT else None
        student, job = training.start_training(s, actor=actor, project=project, teacher_run_id=run_id,
                                               filter_id=use, config=STUDENT)
    _run_child(ctx, job.id, teach + label, distil, "a first student learns", TrainResult)
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor, project = _actor_project(s, ctx)
        job = evaluations.start_evaluation(s, actor=actor, project=project, training_run_id=student.id)
    evaluation = _run_child(ctx, job.id, teach + label + distil, 1 - teach - label - distil,
                            "evaluating it on the holdout", EvaluateResult).evaluation
    ctx.progress(1.0, f"teacher accuracy {result.accuracy:.3f}; teacher run #{run_id}, filter #{filt.id} keeps "
                      f"{filt.counts['kept']:,} outputs; student run #{student.id}, evaluation #{evaluation}",
                 force=True)
    return SetupResult(teacher_accuracy=result.accuracy, teacher_dir=str(result.path), teacher_run=run_id,
                       filter=filt.id, training_run=student.id, evaluation=evaluation)
