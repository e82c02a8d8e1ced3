"""Latency of a student trained elsewhere: measured here like Stillroom's own students, or declared by a person.

Measured: a local model directory (a transformers classifier or a Stillroom n-gram model) or the student's HTTP
endpoint is timed on the holdout's texts with ``core.ml.students.measure_speed``: single-request p50/p95
and batched throughput. Declared: the figures, how and where they were measured and who declares them; the
report says "declared by NAME" wherever it shows them, the gate judges them only when it accepts declared
latency, and a validator approving the evaluation must say that the approval covers them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.domain.errors import InvalidInput
from core.domain.report import LatencyFigures
from core.domain.validation import parse
from core.teacher.local import LocalAdapter

SAMPLE = 256  # holdout texts timed in batches; the first 100 also one at a time, as for trained students
SINGLES = 100
SAMPLE_SEED = 20  # fixed: every evaluation times the same texts of a given holdout
ENDPOINT_TIMEOUT_S = 30.0


def timing_sample(texts: list[str], *, size: int = SAMPLE, seed: int = SAMPLE_SEED) -> list[str]:
    """The holdout texts every latency figure is timed on (students and teachers alike, so a p95 ratio compares
    like with like): a fixed-seed random sample, not the first ``size``. A holdout stored sorted by label would
    otherwise time one class only (one language's texts, say, whose lengths are not the others'). The sample is
    in a random order too (a small holdout is all taken, shuffled), so the first ``SINGLES``, timed one at a
    time, are a random sample as well."""
    texts = list(texts)
    picked = np.random.default_rng(seed).permutation(len(texts))[:size]
    return [texts[i] for i in picked]


class Declared(BaseModel):
    """Latency figures a person vouches for, with how and where they were measured."""

    model_config = ConfigDict(extra="forbid")
    p95_ms: float = Field(gt=0, le=1e7, title="Declared p95 latency (ms)")
    p50_ms: float | None = Field(default=None, gt=0, le=1e7, title="Declared p50 latency (ms)")
    batch_throughput: float | None = Field(default=None, gt=0, le=1e9, title="Declared throughput (examples/s)")
    method: str = Field(min_length=3, max_length=2000, title="How it was measured")
    where: str = Field(min_length=2, max_length=500, title="Where it was measured")
    declared_by: str = Field(min_length=2, max_length=200, title="Declared by")

    @field_validator("method", "where", "declared_by", mode="before")
    @classmethod
    def _strip(cls, v):
        return str(v).strip() if v is not None else v


class Timed:
    """A teacher that runs here (local, or a Python callable, which answers through ``predict``) behind
    ``predict_proba(texts, batch_size=)``, the shape ``measure_speed`` times."""

    def __init__(self, adapter):
        self.adapter = adapter

    def predict_proba(self, texts, *, batch_size: int = 64):
        self.adapter.batch_size = batch_size
        answer = getattr(self.adapter, "predict_proba", None) or self.adapter.predict
        return answer(texts)


def _speed(speed, **how) -> dict:
    return {"p50_ms": speed.single_p50_ms, "p95_ms": speed.single_p95_ms, "batch_throughput": speed.examples_per_s,
            "ms_per_example": speed.ms_per_example, "source": "measured", **how}


def declared(figures: Declared | dict, *, recorded_by: str) -> dict:
    d = parse(Declared, figures)
    return {"p50_ms": d.p50_ms, "p95_ms": d.p95_ms, "batch_throughput": d.batch_throughput,
            "ms_per_example": 1000.0 / d.batch_throughput if d.batch_throughput else None, "source": "declared",
            "declared_by": d.declared_by, "method": d.method, "where": d.where, "recorded_by": recorded_by}


def measure_local(model_dir: str | Path, texts: list[str]) -> dict:
    """Time a saved classifier here (loaded as the local teacher adapter loads one)."""
    from core.ml.students import measure_speed  # lazy: imports torch

    path = Path(model_dir)
    if not path.is_dir():
        raise InvalidInput(f"{model_dir} is not a directory: give the folder the student was saved to.",
                           field="model_dir")
    adapter = LocalAdapter(path)
    return _speed(measure_speed(Timed(adapter), timing_sample(texts), singles=SINGLES, rounds=1),
                  how=f"local model directory {path.name}, timed on this machine")


class _Endpoint:
    """The student's HTTP endpoint: POST {"texts": [...]} answered with any 2xx body."""

    def __init__(self, url: str, client):
        self.url, self.client = url, client

    def predict_proba(self, texts, *, batch_size: int = 64):
        for start in range(0, len(texts), batch_size):
            response = self.client.post(self.url, json={"texts": list(texts[start:start + batch_size])})
            if response.status_code // 100 != 2:
                raise InvalidInput(f"the student's endpoint {self.url} answered HTTP {response.status_code}: it "
                                   "must accept POST {\"texts\": [...]} and answer 2xx.", field="endpoint")
        return None


def measure_endpoint(url: str, texts: list[str], *, timeout_s: float = ENDPOINT_TIMEOUT_S) -> dict:
    """Time the student's HTTP endpoint from here: the network between is part of what is measured."""
    import httpx

    from core.ml.students import measure_speed  # lazy: imports torch

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an http(s) URL: give the student's endpoint, e.g. "
                           "http://127.0.0.1:9000/predict.", field="endpoint")
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s) as client:
            speed = measure_speed(_Endpoint(url, client), timing_sample(texts), singles=SINGLES, rounds=1)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"the student's endpoint {url} could not be timed ({type(exc).__name__}): check that it "
                           "is up and reachable from this machine.", field="endpoint") from None
    if not math.isfinite(speed.single_p95_ms):
        raise InvalidInput(f"the student's endpoint {url} gave no timings.", field="endpoint")
    return _speed(speed, how=f"HTTP endpoint {url}, timed from this machine "
                             f"({time.perf_counter() - started:.1f} s)")


def describe(figures: LatencyFigures | dict | None) -> str:
    """One line naming where a student's latency came from: the words every page and the record show
    (``LatencyFigures.describe`` owns the wording)."""
    if not isinstance(figures, LatencyFigures):
        figures = LatencyFigures.model_validate(figures or {})
    return figures.describe()
