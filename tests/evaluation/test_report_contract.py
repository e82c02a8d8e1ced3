"""The typed contracts between steps (issue 17): every metric a gate can name is a field the evaluation report
provides for the student and the teacher (the NDCG relative-to-teacher criterion once looked up ``ndcg@5``
while the report says ``ndcg@k``); a report stored in the old layout still loads and its hash still verifies;
``gate.spec_of`` gives the typed ``GateSpec``; the gate check and rollout judge with one ``Criterion``."""

from __future__ import annotations

import hashlib

import pytest
from review_helpers import make_evaluation, moderation_predictions

from core.domain import criteria as criteria_mod
from core.domain.gate_spec import FloorKind, GateSpec, Metric
from core.domain.report import EvaluationReport, OverallMetrics, metric_field
from core.evaluation import gate_check, report, runs
from core.gate import gate
from core.rollout import rollout
from core.store.artifacts import path_of
from core.store.models import Artifact

# Every figure a model's overall row can carry, each with its own value so a wrong lookup cannot pass.
STUDENT = {"accuracy": 0.81, "macro_f1": 0.72, "agreement": 0.93, "field_accuracy": 0.64, "ndcg_at_k": 0.55,
           "pairwise_order": 0.46, "n_labelled": 100, "n_agree": 100}
TEACHER = {"accuracy": 0.91, "macro_f1": 0.82, "agreement": 1.0, "field_accuracy": 0.74, "ndcg_at_k": 0.65,
           "pairwise_order": 0.56, "n_labelled": 100, "n_agree": 100}


def _spec(metric: Metric, *, k: int = 10, kind: FloorKind = FloorKind.RELATIVE_TO_TEACHER) -> GateSpec:
    return GateSpec(metric=metric, ranking_k=k, quality_floor={"kind": kind, "value": 0.9},
                    p95_latency_ms=50.0, cost_per_1k=1.0, payback_months=12.0)


GATES = [_spec(m) for m in Metric] + [_spec(Metric.NDCG, k=k) for k in (1, 3, 5, 10, 100)]


@pytest.mark.parametrize("spec", GATES, ids=lambda s: gate_check.metric_name(s))
def test_every_metric_a_gate_can_name_is_a_field_of_the_report_for_student_and_teacher(spec):
    typed = EvaluationReport.model_validate({"overall": {"student": STUDENT, "teacher": TEACHER}})
    shown = gate_check.metric_name(spec)  # "ndcg@5" as the criterion names it, "accuracy" ...
    for name in (str(spec.metric), shown):
        assert metric_field(name) in OverallMetrics.model_fields
        assert typed.student.value_of(name) == STUDENT[metric_field(name)]
        assert typed.teacher.value_of(name) == TEACHER[metric_field(name)]


@pytest.mark.parametrize("spec", GATES, ids=lambda s: gate_check.metric_name(s))
def test_a_relative_to_teacher_floor_finds_the_teachers_figure_whatever_the_k(spec):
    numbers = gate_check.GateNumbers(student=report.metric_values(STUDENT), teacher=report.metric_values(TEACHER),
                                     baseline={}, n={str(spec.metric): 100}, teacher_source="teacher run #1")
    quality = gate_check.quality(spec, numbers)
    expected = 0.9 * TEACHER[metric_field(str(spec.metric))]
    assert quality.status != gate_check.INSUFFICIENT, quality.detail
    assert quality.threshold == pytest.approx(expected)
    assert quality.value == STUDENT[metric_field(quality.name.removeprefix("quality floor: "))]


def test_an_unknown_metric_is_refused_not_read_as_missing():
    with pytest.raises(KeyError, match="ndcg@x"):
        metric_field("ndcg@x")


def test_a_report_stored_in_the_old_layout_still_loads_and_its_hash_still_verifies(session, demo, gated):
    # review_helpers writes the layout of reports stored before sources, the teacher's bar, severe false alarms
    # and holdout versions were recorded.
    ev = make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions())
    stored = path_of(session.get(Artifact, ev.report_artifact_id)).read_bytes()
    typed = runs.load_report(session, ev)  # refuses bytes whose hash is not the recorded one
    assert isinstance(typed, EvaluationReport)
    assert hashlib.sha256(stored).hexdigest() == ev.report_hash
    assert path_of(session.get(Artifact, ev.report_artifact_id)).read_bytes() == stored  # never rewritten
    assert typed.teacher_bar is None and typed.file_teacher is None and typed.evaluation.holdout_version is None
    assert typed.severe.false_alarms is None and typed.severe.n == typed.criteria[-1].n
    assert {c.source for c in typed.criteria} == {criteria_mod.NOT_RECORDED}
    assert typed.slice_criterion("category", "threat").status == gate_check.FAIL and not typed.passed
    assert typed.latency.student.p95_ms == 4.0 and typed.cost.student_per_1k == 0.4


def test_a_new_report_round_trips_to_the_bytes_it_was_stored_as():
    spec = GateSpec.model_validate(gate.template("cost-pressure"))
    frame = moderation_predictions()
    scored = report.score(frame, spec=spec, slices=["category"], labels=None, baselines={})
    body, criteria = report.assemble(scored, spec=spec, evaluation={"n": len(frame), "round": 1},
                                     latency={"student": {"p95_ms": 3.0, "source": "measured"}},
                                     cost={"student_per_1k": 0.5, "source": "measured"})
    again = EvaluationReport.model_validate_json(EvaluationReport.model_validate(body.stored_json())
                                                 .model_dump_json(exclude_unset=True))
    assert again.stored_json() == body.stored_json() and again.criteria == criteria


def test_spec_of_returns_the_typed_gate_and_leaves_the_stored_text_alone(session, gated):
    g = gate.current(session, project_id=gated.id)
    text = g.spec_json
    spec = gate.spec_of(g)
    assert isinstance(spec, GateSpec) and spec == GateSpec.model_validate_json(text)
    assert spec.slice_floors[0].column == "category" and g.spec_json == text


def test_the_gate_check_and_rollout_judge_with_one_criterion_type():
    assert gate_check.Criterion is rollout.Criterion is criteria_mod.Criterion
    waiting = rollout._requests(3, 100, "shadow")
    assert waiting.status == criteria_mod.WAITING and waiting.slice_column is None and waiting.unit == "count"
