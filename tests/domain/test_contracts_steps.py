"""Typed contracts for what crosses a step: job params and results, teacher settings, qualification inputs,
data requests and column mappings. Each is validated from the JSON its row stores, which stays byte for byte
what the code stored before these models existed, so old rows read and `audit verify` stays intact."""

from __future__ import annotations

import json

import pytest
from data_helpers import import_rows, ticket_rows
from sqlalchemy import text
from sqlmodel import Session
from teacher_helpers import routing, save_tiny_classifier

from conftest import good_qualification
from core.data import datasets
from core.decision import decision, requests
from core.domain.errors import InvalidInput, RecordTampered
from core.domain.jobs import EvaluateParams, SearchParams, TrainParams
from core.domain.mapping import StoredMapping, read_mapping
from core.domain.qualification import QualificationInput, read_inputs
from core.domain.requests import DataRequest, read_data_request
from core.qualify import qualification
from core.store import audit, jobs, verification
from core.store.models import Dataset, Job, Qualification, TeacherRun
from core.teacher import model_files, runs
from core.teacher.config import (
    EnsembleConfig,
    FileConfig,
    LocalConfig,
    TeacherRunParams,
    TeacherRunResult,
    read_config,
)


def _stored_text(engine, table: str, column: str, row_id: int) -> str:
    """The JSON exactly as the database holds it (what the row hash covers)."""
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT {column} FROM {table} WHERE id = :i"), {"i": row_id}).scalar_one()


def _as_the_old_code_wrote(session, *, actor, project, kind: str, params: dict) -> Job:
    """A job row written the way jobs.submit wrote it before typed params: the dict as given, and its event."""
    job = Job(project_id=project.id, kind=kind, params=params, created_by=actor.id)
    session.add(job)
    session.flush()
    audit.record(session, actor=actor, action="job.submit", entity="job", entity_id=job.id,
                 project_id=project.id, payload={"kind": kind, "params": params})
    session.commit()
    return job


def _intact(engine) -> None:
    report = verification.verify(engine, files=False)
    assert report.ok, report.lines()


# --------------------------------------------------------------------------- jobs and teacher settings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


def test_a_teacher_run_job_stores_the_old_bytes_and_reads_back_typed(session, engine, demo, model_dir):
    dataset = import_rows(session, demo["dana"], ticket_rows(30))  # recorded with its event, so verify holds
    job = runs.start_run(session, actor=demo["dana"], project=routing(session), dataset_id=dataset.id,
                         adapter="local", config={"model_dir": str(model_dir), "batch_size": 8})
    recorded = model_files.snapshot(model_dir)  # the directory's files, recorded at submit (issue 20)
    old = {"adapter": "local", "config": {"model_dir": str(model_dir), "batch_size": 8, **recorded},
           "dataset_id": dataset.id}
    assert _stored_text(engine, "job", "params", job.id) == json.dumps(old)
    params = jobs.params_as(job, TeacherRunParams)
    assert (params.adapter, params.dataset_id, params.config) == ("local", dataset.id, old["config"])
    assert params.teacher_config() == LocalConfig(model_dir=str(model_dir), batch_size=8, **recorded)

    done = jobs.run(job.id, engine=engine)
    result = jobs.result_as(done, TeacherRunResult)
    run = session.get(TeacherRun, result.teacher_run)
    assert (result.n_rows, list(done.result)) == (run.n_rows, ["teacher_run", "n_rows", "n_unparseable"])
    config = read_config(run)
    assert isinstance(config, LocalConfig) and config.model_sha256 == run.config["model_sha256"]
    assert (config.model_dir, config.batch_size) == (run.config["model_dir"], 8)
    _intact(engine)


def test_submit_refuses_params_that_do_not_fit_the_kind_naming_the_field(session, demo, moderation):
    with pytest.raises(InvalidInput, match="Training run must be a whole number") as err:
        jobs.submit(session, actor=demo["dana"], project=moderation, kind="evaluate",
                    params={"training_run_id": "the best one"})
    assert err.value.field == "training_run_id"
    with pytest.raises(InvalidInput, match="Budget"):
        jobs.submit(session, actor=demo["dana"], project=moderation, kind="train-search",
                    params={"teacher_run_id": 1, "budget_s": 0, "candidates": [{"family": "ngram"}]})


def test_a_stored_job_missing_a_field_is_refused_with_a_sentence_naming_it(session, engine, demo, moderation):
    job = _as_the_old_code_wrote(session, actor=demo["dana"], project=moderation, kind="evaluate", params={})
    with pytest.raises(RecordTampered, match=rf"job #{job.id}'s params .*Training run must be filled in"):
        jobs.params_as(job, EvaluateParams)
    ctx = jobs.JobContext(job.id, moderation.id, dict(job.params), engine)
    with pytest.raises(RecordTampered, match="Training run must be filled in"):
        ctx.read(EvaluateParams)


def test_old_job_rows_still_read_typed_and_verify_intact(session, engine, demo, moderation):
    search = {"teacher_run_id": 3, "filter_id": None, "budget_s": 600.0,
              "candidates": [{"family": "ngram", "size": "tiny"}, {"family": "transformer", "size": "tiny"}]}
    old_search = _as_the_old_code_wrote(session, actor=demo["dana"], project=moderation, kind="train-search",
                                        params=search)
    old_train = _as_the_old_code_wrote(session, actor=demo["dana"], project=moderation, kind="train",
                                       params={"run_id": 7})
    typed = jobs.params_as(old_search, SearchParams)
    assert (typed.teacher_run_id, typed.filter_id, typed.budget_s, typed.candidates) == (
        3, None, 600.0, search["candidates"])
    assert jobs.params_as(old_train, TrainParams).run_id == 7
    # The same request through the typed path stores the same bytes, so its row hash is what it was.
    fresh = jobs.submit(session, actor=demo["dana"], project=moderation, kind="train-search",
                        params=SearchParams(**search))
    assert _stored_text(engine, "job", "params", fresh.id) == _stored_text(engine, "job", "params", old_search.id)
    _intact(engine)


def test_teacher_settings_are_a_union_on_the_adapter_and_a_broken_one_is_named():
    file_run = TeacherRun(id=4, adapter="file", config={"source": "out.csv", "source_sha256": "ab" * 32,
                                                        "drop_foreign": True})
    assert read_config(file_run) == FileConfig(source="out.csv", source_sha256="ab" * 32, drop_foreign=True)
    ensemble = TeacherRun(id=5, adapter="ensemble", config={"method": "vote", "runs": [1, 2]})
    assert read_config(ensemble) == EnsembleConfig(method="vote", runs=[1, 2])
    with pytest.raises(RecordTampered, match=r"teacher run #6's settings .*runs must be filled in"):
        read_config(TeacherRun(id=6, adapter="ensemble", config={"method": "vote"}))
    with pytest.raises(RecordTampered, match="teacher run #8's settings"):
        read_config(TeacherRun(id=8, adapter="oracle", config={}))


# --------------------------------------------------------------------------- qualification inputs


def test_qualification_inputs_read_back_typed_from_the_row(session, engine, demo, qualified):
    row = qualification.latest(session, project_id=qualified.id)
    inputs = qualification.inputs_of(row)
    assert inputs == QualificationInput(**good_qualification())
    assert json.loads(_stored_text(engine, "qualification", "inputs", row.id)) == inputs.model_dump(mode="json")
    _intact(engine)


def test_a_stored_qualification_without_its_play_is_refused_naming_it():
    stored = {k: v for k, v in good_qualification().items() if k != "play"}
    with pytest.raises(RecordTampered, match=r"qualification #3's inputs .*Play must be filled in"):
        qualification.inputs_of(Qualification(id=3, inputs=stored))
    # An answer added to the form later (student cost) reads from an older row as not given.
    older = {k: v for k, v in good_qualification().items() if k != "student_cost_per_1k"}
    assert read_inputs(older).student_cost_per_1k is None


# --------------------------------------------------------------------------- data requests


def test_an_iterate_decision_stores_its_request_as_before_and_reads_it_typed(session, engine, demo, gated,
                                                                               failing_eval):
    row = decision.decide(session, actor=demo["sam"], project=gated, decision="iterate",
                          rationale="threats are missed", evaluation_id=failing_eval.id)
    stored = json.loads(_stored_text(engine, "decision", "data_request", row.id))
    assert list(stored) == ["round", "next_round", "slices", "failing_criteria"]
    assert list(stored["slices"][0]) == ["column", "value", "n", "status", "more_examples", "for", "why"]
    request = read_data_request(row.data_request, decision_id=row.id)
    wanted, severe = request.slices  # the slice under its floor, then the severe class the student misses
    assert (wanted.column, wanted.value, wanted.for_, wanted.more_examples) == (
        "category", "threat", "training", stored["slices"][0]["more_examples"])
    assert (severe.column, severe.value, severe.for_) == ("reference", "threat", "training")
    assert request == DataRequest.model_validate(stored)
    asked, by_reference = requests.status(session, project=gated)
    assert (asked.column, asked.wanted_for, asked.wanted) == ("category", "training", wanted.more_examples)
    assert (by_reference.column, by_reference.added, by_reference.met) == ("reference", 0, False)
    _intact(engine)


def test_a_ship_or_kill_has_no_request_and_a_broken_one_is_named():
    assert read_data_request({}, decision_id=1) is None
    broken = {"round": 1, "next_round": 2, "slices": [{"column": "category", "value": "threat", "n": 4,
                                                       "status": "FAIL", "more_examples": 30, "why": "low"}]}
    with pytest.raises(RecordTampered, match=r"decision #9's data request .*slices\[1\]\.for must be filled in"):
        read_data_request(broken, decision_id=9)


# --------------------------------------------------------------------------- column mappings


def test_an_import_stores_its_mapping_as_before_and_reads_it_typed(session, engine, demo):
    dataset = import_rows(session, demo["dana"], ticket_rows(40))
    old = {"id": "ticket_id", "text": "body", "slices": ["queue", "channel"], "reference": "label",
           "timestamp": None, "labels": None, "source": "tickets.csv", "format": "csv"}
    assert _stored_text(engine, "dataset", "mapping", dataset.id) == json.dumps(old)
    mapping = datasets.mapping_of(session.get(Dataset, dataset.id))
    assert mapping == StoredMapping(**old)
    assert (mapping.id, mapping.text, mapping.slices, mapping.reference) == ("ticket_id", "body",
                                                                             ["queue", "channel"], "label")
    _intact(engine)


def test_a_stored_mapping_without_its_text_column_is_refused_naming_it():
    with pytest.raises(RecordTampered, match=r"dataset #2's column mapping .*Input text column must be filled in"):
        read_mapping({"id": "ticket_id", "slices": [], "source": "t.csv"}, dataset_id=2)
    # A test split's import names no file format: it reads as not given.
    assert read_mapping({"id": "i", "text": "t", "slices": [], "reference": "r", "timestamp": None,
                         "labels": None, "source": "test.csv"}).format is None


def test_old_rows_in_a_session_of_their_own_still_read(engine, demo, moderation):
    """What a reader in a fresh session sees of an old row: the stored JSON, validated, not rewritten."""
    with Session(engine) as s:
        job = _as_the_old_code_wrote(s, actor=demo["dana"], project=moderation, kind="evaluate",
                                     params={"training_run_id": 12})
        before = _stored_text(engine, "job", "params", job.id)
        assert jobs.params_as(s.get(Job, job.id), EvaluateParams).training_run_id == 12
    assert _stored_text(engine, "job", "params", job.id) == before
    _intact(engine)
