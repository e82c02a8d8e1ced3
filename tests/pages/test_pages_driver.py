"""The driver's Teacher and Train pages: runs start as jobs in their own process, progress and
results come back through the database."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from eval_helpers import FAST, ticket_rows
from pages_helpers import app_as, by_label, frame_with
from sqlmodel import Session
from teacher_helpers import LABELS, make_dataset, routing, save_tiny_classifier

from core.data import holdout
from core.store import jobs
from core.store.models import Job
from core.teacher import filter as tfilter
from core.teacher import runs as teacher_runs
from core.training import runs


def wait_for(engine, job_id: int, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as s:
            job = s.get(Job, job_id)
            if job.status in ("done", "failed"):
                return job
        time.sleep(0.3)
    raise AssertionError(f"job #{job_id} did not finish within {timeout} s")


@pytest.fixture
def prepared(session, demo, tmp_path):
    """Routing with inputs, a fixed holdout and a teacher run imported from a file."""
    project = routing(session)
    df = ticket_rows()
    dataset = make_dataset(session, actor=demo["dana"], project=project, df=df)
    holdout.fix_holdout(session, actor=demo["dana"], project=project, dataset_id=dataset.id, fraction=0.2,
                        stratify_by=["queue"])
    path = tmp_path / "teacher.csv"
    pd.DataFrame({"id": df["id"], "label": df["queue"], "confidence": 0.9}).to_csv(path, index=False)
    run = teacher_runs.import_file(session, actor=demo["dana"], project=project, dataset_id=dataset.id, path=path)
    return project, dataset, run


def test_the_local_teacher_runs_as_a_job_and_its_outputs_are_summarised(demo, session, engine, tmp_path):
    project = routing(session)
    dataset = make_dataset(session, actor=demo["dana"], project=project)
    model_dir = save_tiny_classifier(tmp_path / "teacher")
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    by_label(at.text_input, "Model directory (a saved transformers classifier)").input(str(model_dir))
    by_label(at.button, "Start teacher run").click().run()
    assert not at.error, [e.value for e in at.error]
    [job] = [j for j in jobs.list_jobs(session, project_id=project.id) if j.kind == "teacher-run"]
    assert wait_for(engine, job.id).status == "done"
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    runs_table = frame_with(at, "Teacher")
    assert runs_table["Teacher"].tolist() == ["local"] and runs_table["Rows"].tolist() == [30]
    assert {m.label: m.value for m in at.metric}["Outputs"] == "30"
    charts = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert charts == ["Teacher's labels", "Teacher's confidence"]
    assert dataset.id


def test_filter_by_policy_and_look_at_what_was_dropped(demo, session, prepared):
    project, _, run = prepared
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    by_label(at.slider, "Confidence threshold").set_value(0.95)
    by_label(at.button, "Apply filter").click().run()
    [f] = tfilter.list_filters(session, project_id=project.id)
    assert (f.counts["kept"], f.counts["by_reason"]["below-confidence"]) == (0, run.n_rows)
    assert any(f"Filter #{f.id}: kept 0 of {run.n_rows}" in s.value for s in at.success)
    dropped = frame_with(at, "reasons")
    assert len(dropped) == run.n_rows and set(dropped["reasons"]) == {"below-confidence"}


def test_training_starts_as_a_job_and_the_page_shows_the_run_and_its_loss_curve(demo, session, engine, prepared):
    project, _, run = prepared
    at = app_as(demo["dana"], page="pages/train.py", project_id=project.id)
    assert "Training runs under gate v1" in at.caption[1].value
    by_label(at.radio, "Family").set_value("ngram").run()
    by_label(at.number_input, "Epochs (at most)").set_value(FAST["epochs"])
    by_label(at.number_input, "Early-stopping patience").set_value(FAST["patience"])
    by_label(at.button, "Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    [training] = runs.list_runs(session, project_id=project.id)
    assert (training.family, training.teacher_run_id) == ("ngram", run.id)
    assert wait_for(engine, training.job_id).status == "done"
    at = app_as(demo["dana"], page="pages/train.py", project_id=project.id)
    table = frame_with(at, "Family")
    assert table["Status"].tolist() == ["done"] and table["Agreement with teacher (val)"].iloc[0] > 0
    curve = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in curve["data"]] == ["training loss", "validation loss",
                                                   "validation agreement with the teacher"]
    assert len(curve["data"][0]["x"]) >= 2
    # Agreement on a fixed percent axis every 20 %, padded above 100 %, with room on the right for its title.
    agreement = curve["layout"]["yaxis2"]
    assert (agreement["range"], agreement["tick0"], agreement["dtick"], agreement["tickformat"]) == (
        [0, 1.02], 0, 0.2, ".0%")
    assert agreement["title"]["standoff"] > 0 and curve["layout"]["margin"]["r"] >= 60


def test_a_queued_run_shows_empty_numbers_not_invalid_values(demo, session, prepared):
    project, _, run = prepared
    runs.start_training(session, actor=demo["dana"], project=project, teacher_run_id=run.id, filter_id=None,
                        config=dict(FAST))  # queued, never run: no figures yet
    table = frame_with(app_as(demo["dana"], page="pages/train.py", project_id=project.id), "Family")
    assert table["Status"].tolist() == ["queued"]
    for column in ("Agreement with teacher (val)", "Accuracy (val)", "ms/example (batched)", "p95 ms (single)"):
        # A number column given text ("—") marks the cell as an invalid value: it gets an empty float instead.
        assert table[column].dtype == "float64" and table[column].isna().all(), column


def test_no_second_live_teacher_run_is_offered_while_one_is_queued(demo, session, tmp_path):
    project = routing(session)
    dataset = make_dataset(session, actor=demo["dana"], project=project)
    model_dir = save_tiny_classifier(tmp_path / "teacher")
    job = teacher_runs.start_run(session, actor=demo["dana"], project=project, dataset_id=dataset.id,
                                 adapter="local", config={"model_dir": str(model_dir), "batch_size": 16})
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    assert by_label(at.button, "Start teacher run").disabled
    assert any(f"The teacher is running (job #{job.id}" in i.value for i in at.info)
    job.status = "failed"
    session.add(job)
    session.commit()
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    assert not by_label(at.button, "Start teacher run").disabled


def test_the_train_page_refuses_before_the_gate_is_locked(demo, session):
    from core.access import projects

    moderation = projects.get_project(session, "Comment moderation")
    at = app_as(demo["dana"], page="pages/train.py", project_id=moderation.id)
    assert "The gate is not locked" in at.warning[0].value
    assert LABELS


def test_teacher_outputs_made_elsewhere_are_uploaded_and_imported(demo, session):
    project = routing(session)
    dataset = make_dataset(session, actor=demo["dana"], project=project)
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    by_label(at.radio, "Teacher").set_value("file").run()
    at.file_uploader[0].upload("vendor.csv", b"id,label\nT0000,billing\nT0001,technical\n", "text/csv").run()
    by_label(at.button, "Import outputs").click().run()
    [run] = teacher_runs.list_runs(session, project_id=project.id)
    assert (run.adapter, run.n_rows, run.dataset_id, run.config["source"]) == ("file", 2, dataset.id, "vendor.csv")
    assert any(f"Teacher run #{run.id} imported: 2 outputs." in s.value for s in at.success)


def test_the_python_teacher_offers_only_the_approved_functions_and_runs_one(demo, session, engine, monkeypatch):
    import os
    from pathlib import Path

    from core.store.config import get_settings

    project = routing(session)
    make_dataset(session, actor=demo["dana"], project=project)
    monkeypatch.setenv("STILLROOM_TEACHER_CALLABLES", "")
    get_settings.cache_clear()
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    by_label(at.radio, "Teacher").set_value("python").run()
    assert by_label(at.selectbox, "Function (approved by the admin)").options == [
        "none approved: the admin sets STILLROOM_TEACHER_CALLABLES"]
    assert by_label(at.button, "Start teacher run").disabled
    # The job runs in its own process: it inherits the list and finds the fixture module on its path.
    monkeypatch.setenv("STILLROOM_TEACHER_CALLABLES", "teachers_fixture:keyword_rules")
    tests_dir = str(Path(__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
    get_settings.cache_clear()
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=project.id)
    by_label(at.radio, "Teacher").set_value("python").run()
    by_label(at.button, "Start teacher run").click().run()
    assert not at.error, [e.value for e in at.error]
    [job] = [j for j in jobs.list_jobs(session, project_id=project.id) if j.kind == "teacher-run"]
    assert wait_for(engine, job.id).status == "done"
    [run] = teacher_runs.list_runs(session, project_id=project.id)
    assert (run.adapter, run.config["callable"], run.n_rows) == ("python", "teachers_fixture:keyword_rules", 30)


def test_the_train_page_refuses_a_bad_encoder_directory_and_shows_what_each_run_started_from(
        demo, session, engine, prepared, tmp_path):
    from encoder_helpers import save_tiny_encoder

    project, _, run = prepared
    queued = len(jobs.list_jobs(session, project_id=project.id))
    at = app_as(demo["dana"], page="pages/train.py", project_id=project.id)
    by_label(at.text_input, "Student starts from (encoder directory)").input(str(tmp_path / "nowhere"))
    by_label(at.button, "Search both families").click().run()
    assert any("student_init" in e.value and "is not a directory" in e.value for e in at.error), at.error
    assert len(jobs.list_jobs(session, project_id=project.id)) == queued  # refused: nothing queued
    path = save_tiny_encoder(tmp_path / "encoder", texts=ticket_rows()["text"].tolist())
    started, job = runs.start_training(session, actor=demo["dana"], project=project, teacher_run_id=run.id,
                                       config={"family": "transformer", "student_init": str(path), "epochs": 1,
                                               "batch_size": 16, "max_length": 32})
    assert jobs.run(job.id, engine=engine).status == "done"
    table = frame_with(app_as(demo["dana"], page="pages/train.py", project_id=project.id), "Started from")
    [line] = table["Started from"].tolist()
    assert line.startswith(f"pretrained encoder {path.resolve()} (bert, 2 layers × 32, sha256 ")
    assert table["Size"].tolist() == ["pretrained"] and started.id == table["Run"].iloc[0]
