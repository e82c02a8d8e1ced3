"""Who answers one request: a pure decision from the rollout state, the request's bucket and the student's answer.

No I/O here, so every branch is a unit test; the service (core/serving/app.py) acts on the Route.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from core.domain.rollout_state import RolloutState

ServedBy = Literal["student", "teacher", "queue"]
Reason = Literal["confident", "below-threshold", "must-escalate", "not-in-percentage", "shadow", "sampled"]


@dataclass(frozen=True)
class Route:
    served_by: ServedBy
    ask_teacher: bool  # whether the teacher is called for this request (to answer, or to measure agreement)
    reason: Reason


def bucket(key: str) -> float:
    """A stable position in [0, 100) for a request id or input: the same request always lands the same way."""
    return bucket_of(hashlib.sha256(key.encode("utf-8")).digest())


def bucket_of(digest: bytes) -> float:
    """``bucket`` from the key's SHA-256 digest (the service hashes the input once, for this and for its log)."""
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def route(state: RolloutState, *, bucket: float, student_label: str, student_confidence: float, draw: float,
          escalate_to: Literal["teacher", "queue"] = "teacher") -> Route:
    """The route for one request; ``draw`` is a uniform [0, 1) number deciding the teacher sample."""
    found = _route(state, bucket=bucket, student_label=student_label, student_confidence=student_confidence,
                   draw=draw, escalate_to=escalate_to)
    if state.fallback != "queue":
        return found
    # Nothing answers live behind the student (core.rollout.fallback): a person's queue takes every answer the
    # student does not give, and no teacher is asked.
    if found.served_by == "student":
        return CONFIDENT
    return Route("queue", False, found.reason)


def _route(state: RolloutState, *, bucket: float, student_label: str, student_confidence: float, draw: float,
           escalate_to: Literal["teacher", "queue"]) -> Route:
    if state.percent <= 0:  # shadow (and off): the teacher answers everything, the student is only logged
        return Route("teacher", True, "shadow")
    if student_label in state.must_escalate:
        return Route(escalate_to, escalate_to == "teacher", "must-escalate")
    if bucket >= state.percent:
        return Route("teacher", True, "not-in-percentage")
    if student_confidence < state.threshold:
        return Route("teacher", True, "below-threshold")
    if draw < state.teacher_sample_rate:
        return Route("student", True, "sampled")
    return CONFIDENT


CONFIDENT = Route("student", False, "confident")  # most requests' route, made once (a Route is frozen)
