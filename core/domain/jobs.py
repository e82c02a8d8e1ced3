"""The params and result of each kind of job that trains or scores, as typed contracts.

A Job row keeps its params and result as JSON (the params are part of the audited row hash): a job is
submitted with a model, stored as the JSON of the keys given, and read back into the model by its handler
(``JobContext.read``) and by whoever reads its result (``jobs.result_as``). Field order is the order the keys
were written in before these models existed, so the same request stores the same bytes.
The teacher-run job's contract lives with the teacher's settings (``core.teacher.config``), the demo's in the demo.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TrainParams(BaseModel):
    """A "train" job distils one TrainingRun (its settings are the run's own)."""

    model_config = ConfigDict(extra="forbid")
    run_id: int = Field(title="Training run")


class TrainResult(BaseModel):
    training_run: int
    best_epoch: int
    val_agreement: float | None
    val_accuracy: float | None
    model_artifact: int
    started_from: str | None = None  # config, teacher layers, a pretrained encoder (and its hash), pre-trained here


class SearchParams(BaseModel):
    """A "train-search" job trains the candidates in turn within a time budget."""

    model_config = ConfigDict(extra="forbid")
    teacher_run_id: int = Field(title="Teacher run")
    filter_id: int | None = Field(default=None, title="Teacher filter")
    budget_s: float = Field(ge=1, le=7 * 86_400, title="Budget (seconds)")
    # Each candidate is a set of TrainConfig overrides (validated as a TrainConfig when the search is planned).
    candidates: list[dict[str, Any]] = Field(min_length=1, title="Candidates")


class SearchResult(BaseModel):
    runs: list[int]
    skipped: list[str]
    budget_s: float
    elapsed_s: float
    teacher_val_accuracy: float | None
    recommended_run: int | None
    reasons: list[str]
    # Issue 20: the teacher's accuracy where it did not train (the holdout's rows with references), the only
    # denominator of "accuracy retained"; None where unknown (older searches included).
    teacher_holdout_accuracy: float | None = None
    teacher_holdout_rows: int = 0


class EvaluateParams(BaseModel):
    """An "evaluate" job scores one finished training run on the locked holdout."""

    model_config = ConfigDict(extra="forbid")
    training_run_id: int = Field(title="Training run")


class EvaluateResult(BaseModel):
    evaluation: int
    passed: bool
    report_hash: str
