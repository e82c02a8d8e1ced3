"""The "teacher-run" job: runs a local or chat teacher over a dataset and records the run.

Run by ``core.store.jobs.run`` (the CLI, with a terminal bar) or in a detached
process. A chat teacher's answers are cached as they arrive, so running a
failed or capped job again pays only for the rest.
"""

from __future__ import annotations

import time

from sqlmodel import Session

from core.access.projects import require_role
from core.domain.roles import Role
from core.store import vouched
from core.store.jobs import JobContext, handler
from core.store.models import Dataset, Job, Project, User
from core.teacher import runs
from core.teacher.config import TeacherRunParams, TeacherRunResult
from core.teacher.outputs import run_stats, to_frame


@handler(runs.JOB_KIND, params=TeacherRunParams, result=TeacherRunResult)
def teacher_run(ctx: JobContext) -> TeacherRunResult:
    params = ctx.read(TeacherRunParams)
    adapter_name, dataset_id = params.adapter, params.dataset_id
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor = vouched.one(s, User, s.get(Job, ctx.job_id).created_by)
        project = s.get(Project, ctx.project_id)
        require_role(s, actor=actor, project=project, role=Role.DRIVER, doing="run the teacher")
        dataset = runs.get_dataset(s, project=project, dataset_id=dataset_id)
        df = runs.dataset_table(s, dataset)
    ctx.progress(0.0, "loading the teacher", force=True)
    adapter, labels, config = runs.build_adapter(adapter=adapter_name, config=params.config,
                                                 project_id=project.id)
    started = time.perf_counter()
    try:
        predictions = adapter.predict(df["text"].astype(str).tolist(), labels=labels,
                                      progress=lambda f, m: ctx.progress(0.98 * f, m))
    finally:
        if hasattr(adapter, "cache"):
            adapter.cache.close()
    seconds = time.perf_counter() - started
    frame = to_frame(df["id"], predictions)
    stats = run_stats(frame, labels=labels, references=runs.references_of(df))
    stats.update(seconds=round(seconds, 3), examples_per_s=round(len(frame) / seconds, 1) if seconds else None)
    if hasattr(adapter, "stats"):
        stats["http"] = adapter.stats.as_dict()
    ctx.progress(0.99, "storing the outputs", force=True)
    with Session(ctx.engine, expire_on_commit=False) as s:
        run = runs.record_run(s, actor=vouched.one(s, User, actor.id), project=s.get(Project, project.id),
                              dataset=s.get(Dataset, dataset.id), adapter=adapter_name, config=config,
                              labels=labels, frame=frame, stats=stats, job_id=ctx.job_id)
    return TeacherRunResult(teacher_run=run.id, n_rows=run.n_rows, n_unparseable=stats["n_unparseable"])
