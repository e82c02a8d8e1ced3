"""The demo's routing project gets real data: tickets imported, duplicates dropped, a holdout fixed,
and a job that trains the teacher, labels the tickets and filters the teacher's errors."""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import select

from core.access import projects
from core.cli import cli
from core.data import datasets, holdout
from core.demo import seed as demo_mod
from core.store.models import Evaluation, Job, TeacherFilter, TeacherRun, TrainingRun


def test_seed_data_imports_dedups_and_fixes_the_holdout_once(session, demo):
    data = demo_mod.seed_data(session, n=2000)
    routing = projects.get_project(session, demo_mod.ROUTING)
    sets = {d.id: d for d in datasets.list_datasets(session, project_id=routing.id)}
    prompts, deduped, production = sets[data.prompts_id], sets[data.deduped_id], sets[data.production_id]
    assert (prompts.n_rows, prompts.purpose, production.purpose) == (2000, "prompts", "production")
    assert deduped.parent_id == prompts.id and deduped.n_rows < prompts.n_rows  # the planted duplicates went
    assert prompts.mapping["slices"] == ["queue", "channel", "tier", "language"]
    fixed = holdout.get_holdout(session, project_id=routing.id)
    assert (fixed.dataset_id, fixed.n_rows) == (deduped.id, data.holdout_rows)
    assert demo_mod.seed_data(session, n=2000) is None  # idempotent


def test_the_demo_command_trains_a_teacher_and_labels_the_tickets(engine, demo, session):
    result = CliRunner().invoke(cli, ["demo", "--teacher", "wait", "--tickets", "1500", "--teacher-size", "tiny",
                                  "--no-showcase"])
    assert result.exit_code == 0, result.output
    assert "fixed a holdout of" in result.stdout and "job #" in result.stdout
    session.expire_all()
    job = session.exec(select(Job).where(Job.kind == demo_mod.SETUP_JOB)).one()
    assert job.status == "done" and job.progress == 1.0
    run = session.exec(select(TeacherRun)).one()
    assert run.adapter == "local" and job.result["teacher_run"] == run.id
    assert set(run.labels) == set(demo_mod_labels())
    filt = session.exec(select(TeacherFilter)).one()
    assert filt.counts["kept"] + filt.counts["dropped"] == run.n_rows
    student = session.exec(select(TrainingRun)).one()
    evaluation = session.exec(select(Evaluation)).one()
    assert student.status == "done" and student.teacher_run_id == run.id
    assert (evaluation.training_run_id, job.result["evaluation"]) == (student.id, evaluation.id)
    again = CliRunner().invoke(cli, ["demo", "--teacher", "wait", "--tickets", "1500", "--no-showcase"])
    assert again.exit_code == 0 and "job #" not in again.stdout  # nothing is done twice


def demo_mod_labels() -> list[str]:
    from core.demo import tickets as demo_tickets

    return sorted(demo_tickets.QUEUE_SHARES)
