"""The Python teacher: an in-house function named package.module:function, run only from the admin's allow-list
(checked at submit and again at run, before the module is imported), its answers checked row by row, and its run
flowing through filtering, training and evaluation like any other teacher's."""

from __future__ import annotations

import re
import sys

import pytest
import teachers_fixture
from click.testing import CliRunner
from eval_helpers import easy_gate, teacher_run_with_holdout
from sqlmodel import select

from core.access import projects
from core.data import holdout
from core.domain.errors import GovernanceViolation, InvalidInput
from core.evaluation import runs as eval_runs
from core.gate import gate
from core.store import jobs
from core.store.config import get_settings
from core.store.models import AuditEvent, TeacherRun
from core.teacher import filter as teacher_filter
from core.teacher import runs
from core.teacher.config import PythonConfig, read_config
from core.teacher.python import read_answer
from core.training import runs as training_runs

RULES = "teachers_fixture:keyword_rules"
SCORED = "teachers_fixture:scored"
LABELS = ["billing", "technical", "account"]
FAST = {"family": "ngram", "size": "tiny", "epochs": 40, "patience": 5, "lr": 0.05, "device": "cpu"}


def allow(monkeypatch, *names: str) -> None:
    monkeypatch.setenv("STILLROOM_TEACHER_CALLABLES", ",".join(names))
    get_settings.cache_clear()


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


@pytest.fixture
def dataset_id(session, demo, routing, tmp_path):
    teacher_run_with_holdout(session, actor=demo["dana"], project=routing, tmp_path=tmp_path)
    return holdout.current(session, project_id=routing.id).dataset_id


def run_python(session, engine, demo, routing, dataset_id, name: str, **config):
    job = runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                         config={"callable": name, **config})
    return jobs.run(job.id, engine=engine)


def test_a_listed_callable_answers_every_row_in_batches_and_the_record_names_it(session, engine, demo, routing,
                                                                              dataset_id, monkeypatch):
    allow(monkeypatch, RULES)
    teachers_fixture.CALLS.clear()
    seen = []
    job = runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                         config={"callable": RULES, "batch_size": 100})
    done = jobs.run(job.id, engine=engine, on_progress=lambda f, m: seen.append(f))
    assert done.status == "done", done.error
    assert teachers_fixture.CALLS == [100, 100, 40] and seen == sorted(seen)
    run = runs.get_run(session, done.result["teacher_run"])
    config = read_config(run)
    assert isinstance(config, PythonConfig) and config.callable == RULES and config.labels == LABELS
    assert config.module_sha256 and len(config.module_sha256) == 64
    assert run.n_rows == 240 and run.stats["agreement_with_reference"] == 1.0
    assert run.stats["n_with_probs"] == 0  # labels only: no probabilities are invented
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "teacher.run")
                         .where(AuditEvent.entity_id == run.id)).one()
    assert RULES in event.payload


def test_a_callable_not_on_the_list_is_refused_at_submit_and_nothing_is_queued(session, demo, routing, dataset_id,
                                                                              monkeypatch):
    allow(monkeypatch, RULES)
    with pytest.raises(GovernanceViolation, match="'teachers_fixture:scored' is not on the admin's list "
                                                  r"\(STILLROOM_TEACHER_CALLABLES: teachers_fixture:keyword_rules\)"):
        runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                       config={"callable": SCORED})
    allow(monkeypatch)  # an empty list allows none
    with pytest.raises(GovernanceViolation, match="STILLROOM_TEACHER_CALLABLES: empty"):
        runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                       config={"callable": RULES})
    assert [j for j in jobs.list_jobs(session, project_id=routing.id) if j.kind == runs.JOB_KIND] == []


def test_a_callable_taken_off_the_list_after_submit_is_refused_at_run_and_never_imported(
        session, engine, demo, routing, dataset_id, monkeypatch, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "withdrawn_teacher.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef predict(texts):\n    return ['billing'] * len(texts)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    allow(monkeypatch, "withdrawn_teacher:predict")
    job = runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                         config={"callable": "withdrawn_teacher:predict"})
    assert "withdrawn_teacher" not in sys.modules  # submitting imports nothing
    allow(monkeypatch, RULES)  # the admin withdraws it before the job runs
    done = jobs.run(job.id, engine=engine)
    assert done.status == "failed" and "not on the admin's list" in done.error
    assert "withdrawn_teacher" not in sys.modules and not marker.exists()
    assert session.exec(select(TeacherRun).where(TeacherRun.adapter == "python")).all() == []


@pytest.mark.parametrize(("name", "fragment"), [
    ("teachers_fixture:unknown_label_on_third", r"answered row 3 with the label 'refund-desk', not one of"),
    ("teachers_fixture:bad_probs_on_second", r"answered row 2 with probabilities .*-1\.0.* not a distribution"),
    ("teachers_fixture:one_short", r"returned 239 answers for rows 1-240 \(240 texts\)"),
    ("teachers_fixture:not_a_list", r"returned something that is not a list for rows 1-240"),
])
def test_a_bad_answer_is_refused_naming_the_row_and_nothing_is_recorded(session, engine, demo, routing,
                                                                         dataset_id, monkeypatch, name, fragment):
    allow(monkeypatch, name)
    done = run_python(session, engine, demo, routing, dataset_id, name, batch_size=500)
    assert done.status == "failed"
    assert re.search(fragment, done.error), done.error
    assert session.exec(select(TeacherRun).where(TeacherRun.adapter == "python")).all() == []


def test_answers_are_read_by_one_contract():
    labelled = read_answer("account", row=1, labels=LABELS, name=RULES)
    assert (labelled.label, labelled.probs, labelled.confidence) == ("account", None, None)
    scored = read_answer({"label": "technical", "probs": {"technical": 3, "billing": 1}}, row=2, labels=LABELS,
                         name=RULES)
    assert scored.probs == [0.25, 0.75, 0.0] and scored.confidence == 0.75  # normalised, in the run's label order
    for bad in (None, 7, {"lable": "account"}, {"label": "account", "probs": {"refunds": 1.0}}, ""):
        with pytest.raises(InvalidInput, match="answered row 9 with"):
            read_answer(bad, row=9, labels=LABELS, name=RULES)


@pytest.mark.parametrize("name", ["teachers_fixture.keyword_rules", "teachers_fixture:", ":f", "a b:c",
                                  "os:system; rm", "pkg..mod:f"])
def test_a_malformed_callable_name_is_refused_naming_the_field_and_the_form(session, demo, routing, dataset_id,
                                                                            monkeypatch, name):
    allow(monkeypatch, name)
    with pytest.raises(InvalidInput, match="is not of the form package.module:function"):
        runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset_id, adapter="python",
                       config={"callable": name})


def test_its_outputs_flow_through_filtering_training_and_evaluation(session, engine, demo, routing, dataset_id,
                                                                    monkeypatch):
    allow(monkeypatch, SCORED)
    done = run_python(session, engine, demo, routing, dataset_id, SCORED)
    assert done.status == "done", done.error
    run_id = done.result["teacher_run"]
    filt = teacher_filter.apply_filter(session, actor=demo["dana"], project=routing, run_id=run_id,
                                       policy=teacher_filter.FilterPolicy(min_confidence=0.7))
    assert filt.counts["kept"] == 240 and runs.get_run(session, run_id).stats["n_with_probs"] == 240
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    training, job = training_runs.start_training(session, actor=demo["dana"], project=routing,
                                                 teacher_run_id=run_id, filter_id=filt.id, config=FAST)
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    job = eval_runs.start_evaluation(session, actor=demo["dana"], project=routing, training_run_id=training.id)
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    session.expire_all()
    ev = eval_runs.get_evaluation(session, project=routing, evaluation_id=done.result["evaluation"])
    report = eval_runs.load_report(session, ev)
    assert report.evaluation.teacher_run_id == run_id
    assert report.teacher_bar.run == run_id  # a run Stillroom made by asking the teacher: trusted as the bar
    assert report.overall["teacher"].accuracy == 1.0 and report.overall["student"].accuracy >= 0.9


def test_the_cli_runs_a_listed_callable_and_refuses_an_unlisted_one(engine, demo, session, routing, dataset_id,
                                                                     monkeypatch):
    from core.cli import cli

    allow(monkeypatch, RULES)
    args = ["--as", "dana", "teacher", "run", "Support ticket routing", "--dataset", str(dataset_id),
            "--adapter", "python", "--callable"]
    result = CliRunner().invoke(cli, [*args, RULES])
    assert result.exit_code == 0, result.output
    assert "(python): 240 rows, 0 unparseable, agreement with references 1.000" in result.output
    refused = CliRunner().invoke(cli, [*args, SCORED])
    assert refused.exit_code != 0 and "STILLROOM_TEACHER_CALLABLES" in refused.stderr
