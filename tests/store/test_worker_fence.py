"""Issue 20: a worker that lost its job writes none of its handler's rows (core.store.jobs.fenced): every session
on the engine a worker's run hands its handler commits only while that worker still holds the job.

The same takeover of a real training job on PostgreSQL: tests/postgres/test_postgres_workers.py."""

from __future__ import annotations

import fence_helpers as fh
import pytest
import worker_helpers as wh
from sqlmodel import Session, select
from teacher_helpers import make_dataset, routing, save_tiny_classifier

from core.store import jobs
from core.store.models import Artifact, Job, TeacherRun
from core.store.worker import claim_next
from core.teacher import runs as teacher_runs

RULES = fh.RULES


def test_a_fenced_session_writes_while_its_worker_holds_the_job_and_nothing_once_it_lost_it(engine, session, demo,
                                                                                          moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    jobs.hand_to_workers(job.id)
    assert claim_next(engine, worker=fh.FIRST, rules=RULES).job_id == job.id
    mine = jobs.fenced(engine, job_id=job.id, worker=fh.FIRST)
    fh.renamed(mine, moderation.id, "written while held")
    assert fh.description(engine, moderation.id) == "written while held"
    fh.go_quiet(engine, job.id)
    assert claim_next(engine, worker=fh.SECOND, rules=RULES).took_over_from == fh.FIRST
    with pytest.raises(jobs.JobLost, match=f"taken over by another worker after {fh.FIRST} went quiet"):
        fh.renamed(mine, moderation.id, "written after the takeover")
    assert fh.description(engine, moderation.id) == "written while held"  # rolled back: nothing changed
    fh.renamed(jobs.fenced(engine, job_id=job.id, worker=fh.SECOND), moderation.id, "the new holder's")
    fh.renamed(engine, moderation.id, "anyone else's session is not fenced")
    assert fh.description(engine, moderation.id) == "anyone else's session is not fenced"


def test_a_fenced_commit_also_refuses_once_the_job_has_finished(engine, session, demo, moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=wh.KIND, params={})
    jobs.hand_to_workers(job.id)
    claim_next(engine, worker=fh.FIRST, rules=RULES)
    assert jobs._finish(engine, job.id, "done", {}, "", worker=fh.FIRST).status == "done"
    with pytest.raises(jobs.JobLost):  # a straggling thread of the finished run
        fh.renamed(jobs.fenced(engine, job_id=job.id, worker=fh.FIRST), moderation.id, "late")
    assert fh.description(engine, moderation.id) != "late"


def test_a_training_job_taken_over_while_its_first_holder_lives_keeps_only_the_new_holders_result(
        engine, session, demo, tmp_path, monkeypatch):
    fh.assert_only_the_new_holders_result(fh.train_taken_over(session, engine, demo=demo, tmp_path=tmp_path,
                                                               monkeypatch=monkeypatch))



def test_a_teacher_run_taken_over_while_its_first_holder_lives_records_only_the_new_holders_outputs(
        engine, session, demo, tmp_path, monkeypatch):
    project = routing(session)
    dataset = make_dataset(session, actor=demo["dana"], project=project)
    model_dir = save_tiny_classifier(tmp_path / "teacher")
    job = teacher_runs.start_run(session, actor=demo["dana"], project=project, dataset_id=dataset.id,
                                 adapter="local", config={"model_dir": str(model_dir), "batch_size": 16})
    # Held with the teacher's answers in hand, about to store them (a table in the store, the run's row).
    first_saw = fh.taken_over_while_held(engine, job.id, monkeypatch, hold=(teacher_runs, "record_run"))
    assert (first_saw.status, first_saw.worker) == ("done", fh.SECOND)
    with Session(engine) as s:
        recorded = list(s.exec(select(TeacherRun).where(TeacherRun.project_id == project.id)))
        outputs = list(s.exec(select(Artifact).where(Artifact.kind == "teacher-outputs")))
        finished = s.get_one(Job, job.id)
    assert [r.job_id for r in recorded] == [job.id] and finished.result["teacher_run"] == recorded[0].id
    assert len(outputs) == 1
    # The first holder's table was written, then deleted when its fenced commit rolled back: no file is orphaned.
    assert [p.name for p in tmp_path.rglob("teacher-outputs-*.parquet")] == [outputs[0].path.rsplit("/", 1)[1]]
