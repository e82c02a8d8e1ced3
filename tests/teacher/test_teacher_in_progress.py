"""One live teacher run at a time: core says which job is still queued or running (the Teacher page asks it)."""

from __future__ import annotations

from teacher_helpers import make_dataset, routing, save_tiny_classifier

from core.teacher import runs


def test_a_queued_or_running_live_run_is_in_progress_and_a_failed_or_done_one_is_not(demo, session, tmp_path):
    project = routing(session)
    assert runs.live_run_in_progress(session, project_id=project.id) is None
    dataset = make_dataset(session, actor=demo["dana"], project=project)
    job = runs.start_run(session, actor=demo["dana"], project=project, dataset_id=dataset.id, adapter="local",
                         config={"model_dir": str(save_tiny_classifier(tmp_path / "teacher")), "batch_size": 16})
    assert runs.live_run_in_progress(session, project_id=project.id) == job.id
    for status in ("running", "failed", "done"):
        job.status = status
        session.add(job)
        session.commit()
        expected = job.id if status == "running" else None
        assert runs.live_run_in_progress(session, project_id=project.id) == expected, status
