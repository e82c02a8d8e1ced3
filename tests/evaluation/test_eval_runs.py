"""Evaluating a trained student as a job: scored on the holdout beside the teacher and baselines, stored with its
hash and audited; driver only, refused without a locked gate; superseded gates are reported."""

from __future__ import annotations

import pytest
from eval_helpers import easy_gate, teacher_run_with_holdout, trained_student
from sqlmodel import select

from core.access import projects
from core.domain.errors import GateNotLocked, GovernanceViolation, PermissionDenied
from core.domain.hashing import canonical_json, sha256_hex
from core.evaluation import runs
from core.gate import gate
from core.store import jobs
from core.store.models import AuditEvent, Evaluation


@pytest.fixture
def routing(session, demo):
    return projects.get_project(session, "Support ticket routing")


@pytest.fixture
def student(session, engine, demo, routing, tmp_path):
    teacher_run = teacher_run_with_holdout(session, actor=demo["dana"], project=routing, tmp_path=tmp_path)
    return trained_student(session, engine, actor=demo["dana"], project=routing, teacher_run=teacher_run)


def _evaluate(session, engine, actor, project, run_id) -> Evaluation:
    job = runs.start_evaluation(session, actor=actor, project=project, training_run_id=run_id)
    seen = []
    done = jobs.run(job.id, engine=engine, on_progress=lambda f, m: seen.append(f))
    assert done.status == "done", done.error
    assert seen == sorted(seen) and seen[-1] == 1.0
    session.expire_all()
    return runs.get_evaluation(session, project=project, evaluation_id=done.result["evaluation"])


def test_an_evaluation_job_scores_the_student_and_stores_a_hashed_report(session, engine, demo, routing, student):
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="a bar for the test data")
    ev = _evaluate(session, engine, demo["dana"], routing, student.id)
    report = runs.load_report(session, ev)
    assert sha256_hex(canonical_json(report.stored_json())) == ev.report_hash  # read back as stored
    assert set(report.stored_json()) >= {"evaluation", "overall", "gap_to_teacher", "slices", "latency", "cost",
                                         "severe", "criteria", "passed"}
    overall = report.overall
    assert overall["teacher"].accuracy == 1.0 and overall["student"].accuracy >= 0.9
    assert set(overall) == {"student", "teacher", "majority", "tfidf"}
    assert overall["majority"].accuracy < 0.5 < overall["tfidf"].accuracy
    assert report.evaluation.source == "trained" and report.evaluation.round == 1
    assert report.evaluation.gate_version == 2 and not runs.is_superseded(session, ev)
    assert report.latency.student.p95_ms > 0 and report.latency.teacher.p95_ms is None
    assert report.cost.model_dump() == {"teacher_per_1k": 5.0, "student_per_1k": 0.25, "basis": "qualification",
                              "source": "declared by sam in the qualification"}
    billing = next(s for s in report.slices if s.column == "queue" and s.value == "billing")
    assert billing.n == 16 and billing.student.ci_low <= billing.student.accuracy
    assert [c.status for c in report.criteria] == ["PASS"] * 5 and ev.passed and report.passed
    assert ev.summary["criteria"] == [c.as_dict() for c in report.criteria]
    # The bar is the teacher run the student was trained on, named; latency was measured here.
    teacher_run = report.evaluation.teacher_run_id
    assert report.criteria[0].source.startswith(f"teacher run #{teacher_run} by dana, locked at ")
    assert report.criteria[-2].source == "measured"

    preds = runs.load_predictions(session, ev)
    assert len(preds) == report.evaluation.n == 48
    assert list(preds.columns[:8]) == ["id", "text", "reference", "teacher_label", "teacher_confidence",
                                       "student_label", "student_confidence", "severe"]
    assert "queue" in preds.columns
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "evaluation.record")).all()
    assert len(events) == 1 and ev.report_hash in events[0].payload


def test_a_report_changed_on_disk_is_refused(session, engine, demo, routing, student):
    ev = _evaluate(session, engine, demo["dana"], routing, student.id)
    from core.store.artifacts import path_of
    from core.store.models import Artifact

    path = path_of(session.get(Artifact, ev.report_artifact_id))
    path.write_bytes(path.read_bytes().replace(b'"passed":false', b'"passed":true'))
    with pytest.raises(GovernanceViolation, match="changed after it was recorded"):
        runs.load_report(session, ev)


def test_the_demo_gate_fails_with_insufficient_data_and_a_newer_gate_supersedes_it(session, engine, demo, routing,
                                                                                    student):
    ev = _evaluate(session, engine, demo["dana"], routing, student.id)
    report = runs.load_report(session, ev)
    statuses = {c.name: c.status for c in report.criteria}
    assert statuses["slice queue=legal_compliance: accuracy"] == "INSUFFICIENT DATA"
    assert not ev.passed
    gate.lock(session, actor=demo["sam"], project=routing, spec=easy_gate(), reason="the demo floors do not apply")
    assert runs.is_superseded(session, ev)


def test_only_the_driver_evaluates(session, demo, routing, student):
    for person in ("val", "sam", "oscar"):
        with pytest.raises(PermissionDenied, match="Only a driver"):
            runs.start_evaluation(session, actor=demo[person], project=routing, training_run_id=student.id)


def test_evaluation_without_a_locked_gate_is_refused(session, demo):
    moderation = projects.get_project(session, "Comment moderation")
    with pytest.raises(GateNotLocked, match="not locked: the sponsor must lock it before evaluating"):
        runs.start_evaluation(session, actor=demo["dana"], project=moderation, training_run_id=1)
    assert session.exec(select(Evaluation)).all() == []



def test_a_local_teacher_is_run_on_the_holdout_and_timed(session, engine, demo, routing, tmp_path):
    from eval_helpers import ticket_rows, trained_student
    from teacher_helpers import make_dataset, save_tiny_classifier

    from core.data import holdout
    from core.teacher import runs as teacher_runs

    model_dir = save_tiny_classifier(tmp_path / "teacher-model")
    dataset = make_dataset(session, actor=demo["dana"], project=routing, df=ticket_rows())
    holdout.fix_holdout(session, actor=demo["dana"], project=routing, dataset_id=dataset.id, fraction=0.2,
                        stratify_by=["queue"])
    job = teacher_runs.start_run(session, actor=demo["dana"], project=routing, dataset_id=dataset.id,
                                 adapter="local", config={"model_dir": str(model_dir), "batch_size": 16})
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    teacher_run = teacher_runs.list_runs(session, project_id=routing.id)[0]
    run = trained_student(session, engine, actor=demo["dana"], project=routing, teacher_run=teacher_run)
    ev = _evaluate(session, engine, demo["dana"], routing, run.id)
    report = runs.load_report(session, ev)
    assert report.latency.teacher.p95_ms > 0 and report.latency.teacher.batch_throughput > 0
    preds = runs.load_predictions(session, ev).set_index("id")
    stored = teacher_runs.load_outputs(session, teacher_run).set_index("id")
    # The teacher answered the holdout again here, and gives the answers its run stored.
    assert (preds["teacher_label"] == stored.loc[preds.index, "label"]).all()


def test_student_cost_scales_the_teachers_by_measured_compute_without_a_sponsor_figure(session, demo, routing,
                                                                                       monkeypatch):
    from types import SimpleNamespace

    q = SimpleNamespace(inputs={"teacher_cost_per_1k": 5.0, "student_cost_per_1k": None})
    monkeypatch.setattr(runs.qualification, "latest", lambda s, project_id: q)
    latency = {"student": {"ms_per_example": 0.5}, "teacher": {"ms_per_example": 10.0}}
    cost = runs.cost_figures(session, project_id=routing.id, latency=latency)
    assert cost["student_per_1k"] == pytest.approx(0.25) and "measured compute" in cost["basis"]
    cost = runs.cost_figures(session, project_id=routing.id, latency={"student": latency["student"], "teacher": None})
    assert cost["student_per_1k"] == pytest.approx(0.5) and cost["basis"].startswith("assumed 10%")
