"""The demo's slow part, as the "demo-setup" job: train the teacher, label the tickets, filter.

Kept apart from core.demo so seeding (and every CLI call that imports it) stays light.
"""

from __future__ import annotations

from sqlmodel import Session

from core.demo import SETUP_JOB
from core.jobs import JobContext, handler
from core.models import Project, User


@handler(SETUP_JOB)
def setup_job(ctx: JobContext) -> dict:
    """Train the demo teacher (75 % of the bar), label the tickets with it (20 %), filter its errors."""
    from core import jobs
    from core.demo_teacher import TEACHER_SEED, default_dir, train_teacher
    from core.models import Job
    from core.teacher import filter as tfilter
    from core.teacher import runs as teacher_runs
    from data import demo_tickets

    params = ctx.params
    ctx.progress(0.0, "generating the teacher's own tickets", force=True)
    tickets = demo_tickets.generate(int(params.get("n", demo_tickets.DEFAULT_N)), TEACHER_SEED)
    result = train_teacher(tickets, default_dir(), size=params.get("size", "teacher"),
                           progress=lambda f, m: ctx.progress(0.75 * f, f"training the teacher: {m}"))
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor = s.get(User, s.get(Job, ctx.job_id).created_by)
        project = s.get(Project, ctx.project_id)
        run_job = teacher_runs.start_run(s, actor=actor, project=project, dataset_id=int(params["dataset_id"]),
                                         adapter="local", config={"model_dir": str(result.path)})
    done = jobs.run(run_job.id, engine=ctx.engine,
                    on_progress=lambda f, m: ctx.progress(0.75 + 0.2 * f, f"the teacher labels the tickets: {m}"))
    run_id = jobs.result_or_raise(done)["teacher_run"]
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor = s.get(User, s.get(Job, ctx.job_id).created_by)
        filt = tfilter.apply_filter(s, actor=actor, project=s.get(Project, ctx.project_id), run_id=run_id,
                                    policy=tfilter.FilterPolicy(min_confidence=0.5, drop_reference_disagreement=True))
        kept = filt.counts["kept"]
    ctx.progress(1.0, f"teacher accuracy {result.accuracy:.3f}; teacher run #{run_id}, filter #{filt.id} "
                      f"keeps {kept:,} outputs", force=True)
    return {"teacher_accuracy": result.accuracy, "teacher_dir": str(result.path), "teacher_run": run_id,
            "filter": filt.id}


