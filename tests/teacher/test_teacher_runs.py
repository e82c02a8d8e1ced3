"""Teacher runs as jobs: driver only, outputs stored in the contract's schema with a run row and audit event."""

from __future__ import annotations

import pytest
from sqlmodel import select
from teacher_helpers import LABELS, make_dataset, routing, save_tiny_classifier

from core.domain.errors import InvalidInput, NotFound, PermissionDenied
from core.store import jobs
from core.store.artifacts import load_table
from core.store.models import Artifact, AuditEvent, Job, TeacherRun
from core.teacher import runs
from core.teacher.filter import kept_outputs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture
def dataset(session, demo):
    return make_dataset(session, actor=demo["dana"], project=routing(session))


def run_local(session, engine, demo, dataset, model_dir):
    job = runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                         adapter="local", config={"model_dir": str(model_dir), "batch_size": 8})
    seen = []
    done = jobs.run(job.id, engine=engine, on_progress=lambda f, m: seen.append(f))
    assert done.status == "done", done.error
    return done, seen


def test_local_run_job_stores_outputs_run_row_and_audit_event(session, engine, demo, dataset, model_dir):
    job, seen = run_local(session, engine, demo, dataset, model_dir)
    session.expire_all()
    run = session.exec(select(TeacherRun)).one()
    assert (job.result["teacher_run"], run.job_id, run.adapter, run.n_rows) == (run.id, job.id, "local", 30)
    assert run.labels == LABELS and run.config["model_sha256"] and "api_key" not in run.config
    table = load_table(session.get(Artifact, run.artifact_id))
    assert list(table.columns) == ["id", "label", "confidence", "probs", "raw"]
    assert table["id"].tolist() == [f"T{i:04d}" for i in range(30)]
    assert set(table["label"]) <= set(LABELS) and all(len(p) == 3 for p in table["probs"])
    assert run.stats["n_with_reference"] == 20 and 0 <= run.stats["agreement_with_reference"] <= 1
    assert seen[-1] >= 0.98 and seen == sorted(seen)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "teacher.run")).one()
    assert event.entity_id == str(run.id) and event.actor == "dana"


def test_only_the_driver_runs_the_teacher(session, demo, dataset, model_dir):
    for person in ("val", "sam", "oscar"):
        with pytest.raises(PermissionDenied, match="Only a driver .* can run the teacher"):
            runs.start_run(session, actor=demo[person], project=routing(session), dataset_id=dataset.id,
                           adapter="local", config={"model_dir": str(model_dir)})
    assert session.exec(select(Job)).all() == []


def test_a_dataset_of_another_project_is_refused(session, demo, moderation, dataset, model_dir):
    with pytest.raises(NotFound, match="has no dataset"):
        runs.start_run(session, actor=demo["dana"], project=moderation, dataset_id=dataset.id,
                       adapter="local", config={"model_dir": str(model_dir)})


def test_settings_that_look_like_secrets_are_refused_before_anything_is_queued(session, demo, dataset):
    with pytest.raises(InvalidInput, match="looks like a secret.*api_key_env"):
        runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                       adapter="http", config={"model": "m", "api_key": "sk-live-123"})
    assert session.exec(select(Job)).all() == []


def test_summary_gives_label_counts_and_a_confidence_histogram(session, engine, demo, dataset, model_dir):
    run_local(session, engine, demo, dataset, model_dir)
    run = runs.list_runs(session, project_id=routing(session).id)[0]
    summary = runs.summarize(session, run=run)
    assert sum(summary.label_counts.values()) == 30 and summary.n_unparseable == 0
    assert len(summary.confidence_bins) == 11 and sum(summary.confidence_counts) == 30
    assert summary.n_with_reference == 20


def test_kept_outputs_of_a_run_is_the_run_table(session, engine, demo, dataset, model_dir):
    run_local(session, engine, demo, dataset, model_dir)
    run = runs.list_runs(session, project_id=routing(session).id)[0]
    kept = kept_outputs(session, filter_or_run=run)
    assert len(kept) == 30 and list(kept.columns) == ["id", "label", "confidence", "probs", "raw"]


def test_training_reads_the_run_through_the_pool(session, engine, demo, dataset, model_dir):
    from core.training import pool

    run_local(session, engine, demo, dataset, model_dir)
    run = runs.list_runs(session, project_id=routing(session).id)[0]
    data = pool._targets(kept_outputs(session, filter_or_run=run).merge(
        runs.dataset_table(session, dataset)[["id", "text", "reference"]], on="id"), labels=run.labels,
        run_id=run.id)[0]
    assert data.probs.shape == (30, 3) and (data.reference >= 0).sum() == 20


def test_the_summary_names_each_confidence_bin_by_its_range(session, engine, demo, dataset, model_dir):
    run_local(session, engine, demo, dataset, model_dir)
    summary = runs.summarize(session, run=runs.list_runs(session, project_id=routing(session).id)[0])
    assert summary.confidence_ranges[0] == "0.0–0.1" and summary.confidence_ranges[-1] == "0.9–1.0"
    assert len(summary.confidence_ranges) == len(summary.confidence_counts)


def test_the_runs_table_rounds_figures_and_an_import_names_the_rows_it_dropped(session, engine, demo, dataset,
                                                                                 model_dir):
    run_local(session, engine, demo, dataset, model_dir)
    [run] = runs.list_runs(session, project_id=routing(session).id)
    [row] = runs.runs_table([run]).to_dict("records")
    assert (row["Run"], row["Teacher"], row["Rows"], row["Labels"]) == (run.id, "local", 30, len(LABELS))
    assert runs.imported_sentence(run) == f"Teacher run #{run.id} imported: 30 outputs."
    run.stats = {**run.stats, "foreign_rows_dropped": 4}
    assert runs.imported_sentence(run).endswith(f"; 4 rows not in dataset #{run.dataset_id} dropped.")


def test_the_page_offers_the_configured_teacher_directory_else_the_demos_when_it_exists(tmp_path, monkeypatch):
    from core.store.config import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path))
    assert runs.offered_model_dir() == ""  # neither is there
    runs.demo_model_dir().mkdir(parents=True)
    assert runs.offered_model_dir() == str(tmp_path / "models" / "demo-teacher")
    monkeypatch.setenv("STILLROOM_TEACHER_MODEL_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert runs.offered_model_dir() == str(tmp_path)
    get_settings.cache_clear()
