"""The closed sets of words a person picks from: a play at step 1, a review verdict and the sponsor's decision at
step 5, a decision record's format.

They live apart from the modules that act on them (core.domain.qualification, core.review.review,
core.evaluation.rounds, core.decision.record, which re-export them) and import nothing, so that the CLI offers
them as choices in `stillroom gate template --help` or `stillroom decide --help` without loading pydantic,
SQLAlchemy or pandas.
"""

from __future__ import annotations

from enum import StrEnum


class Play(StrEnum):
    COST = "cost-pressure"
    LATENCY = "latency"
    STABILITY = "stability"
    SPECIALIZATION = "specialization"


class Choice(StrEnum):
    """The sponsor's decision on a round."""

    SHIP = "ship"
    ITERATE = "iterate"
    KILL = "kill"


VERDICTS = ("teacher-right", "student-right", "both-wrong", "ambiguous")
RECORD_FORMATS = ("md", "html")
