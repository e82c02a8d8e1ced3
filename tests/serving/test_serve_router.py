"""Routing one request: shadow, percentage buckets, the fallback threshold, must-escalate labels, teacher sampling."""

from __future__ import annotations

import random

import pytest

from core.domain.rollout_state import RolloutState
from core.serving.router import Route, bucket, route


def _state(stage: str = "25", *, threshold: float = 0.6, must: tuple[str, ...] = ("legal",),
           sample: float = 0.05) -> RolloutState:
    return RolloutState(stage=stage, threshold=threshold, must_escalate=list(must), teacher_sample_rate=sample)


def _route(state, *, b=10.0, label="billing", conf=0.9, draw=0.5, escalate_to="teacher") -> Route:
    return route(state, bucket=b, student_label=label, student_confidence=conf, draw=draw, escalate_to=escalate_to)


@pytest.mark.parametrize("stage", ["shadow", "off"])
def test_shadow_serves_the_teacher_and_asks_it_whatever_the_student_says(stage):
    for label, conf in [("billing", 0.99), ("legal", 0.99), ("billing", 0.1)]:
        assert _route(_state(stage), label=label, conf=conf, draw=0.0) == Route("teacher", True, "shadow")


def test_a_confident_student_inside_the_percentage_serves_without_the_teacher():
    assert _route(_state("25"), b=24.99, conf=0.6, draw=0.05) == Route("student", False, "confident")


def test_a_request_outside_the_percentage_goes_to_the_teacher():
    assert _route(_state("25"), b=25.0) == Route("teacher", True, "not-in-percentage")
    assert _route(_state("5"), b=50.0) == Route("teacher", True, "not-in-percentage")


def test_below_the_threshold_the_teacher_answers_instead():
    assert _route(_state("100", threshold=0.6), b=99.9, conf=0.5999) == Route("teacher", True, "below-threshold")


def test_must_escalate_labels_go_to_the_teacher_or_a_persons_queue_even_when_confident():
    st = _state("100", must=("legal",))
    assert _route(st, label="legal", conf=1.0) == Route("teacher", True, "must-escalate")
    assert _route(st, label="legal", conf=1.0, escalate_to="queue") == Route("queue", False, "must-escalate")


def test_must_escalate_wins_over_the_percentage_so_no_severe_answer_slips_through():
    assert _route(_state("5", must=("legal",)), b=90.0, label="legal") == Route("teacher", True, "must-escalate")


def test_the_teacher_is_asked_on_a_sample_of_confident_requests_that_the_student_still_serves():
    assert _route(_state("100", sample=0.05), draw=0.049) == Route("student", True, "sampled")
    assert _route(_state("100", sample=0.05), draw=0.05) == Route("student", False, "confident")
    assert _route(_state("100", sample=0.0), draw=0.0) == Route("student", False, "confident")


def test_the_sampled_share_matches_the_configured_rate():
    rng = random.Random(3)
    routes = [_route(_state("100", sample=0.1), draw=rng.random()) for _ in range(10_000)]
    share = sum(r.reason == "sampled" for r in routes) / len(routes)
    assert 0.09 < share < 0.11


def test_bucketing_is_deterministic_and_uniform_in_0_to_100():
    assert bucket("req-1") == bucket("req-1") != bucket("req-2")
    values = [bucket(f"req-{i}") for i in range(10_000)]
    assert 0.0 <= min(values) and max(values) < 100.0


@pytest.mark.parametrize("stage", ["5", "25", "100"])
def test_a_percentage_stage_sends_close_to_its_share_to_the_student(stage):
    st = _state(stage, threshold=0.0, must=(), sample=0.0)
    served = [_route(st, b=bucket(f"ticket-{i}")).served_by for i in range(10_000)]
    share = served.count("student") / len(served) * 100
    assert abs(share - int(stage)) < 1.0


@pytest.mark.parametrize("stage", ["25%", "half", "0", "101", " 25"])
def test_a_stage_that_is_not_off_shadow_or_a_whole_percentage_is_refused_not_read_as_zero(stage):
    with pytest.raises(ValueError, match="whole percentage"):
        _state(stage)


def test_the_percentage_follows_from_the_stage():
    assert [_state(s).percent for s in ("off", "shadow", "5", "100")] == [0, 0, 5, 100]


def test_with_a_queue_fallback_a_person_answers_everything_the_student_does_not_and_no_teacher_is_asked():
    def queue_state(stage: str) -> RolloutState:
        return RolloutState(stage=stage, threshold=0.6, must_escalate=["legal"], teacher_sample_rate=0.05,
                            fallback="queue")

    assert _route(queue_state("shadow")) == Route("queue", False, "shadow")
    assert _route(queue_state("25"), label="legal", conf=1.0) == Route("queue", False, "must-escalate")
    assert _route(queue_state("25"), b=50.0) == Route("queue", False, "not-in-percentage")
    assert _route(queue_state("25"), conf=0.3) == Route("queue", False, "below-threshold")
    assert _route(queue_state("25"), draw=0.0) == Route("student", False, "confident")  # no teacher to sample
    assert _route(_state("25"), draw=0.0) == Route("student", True, "sampled")  # a live teacher still is
