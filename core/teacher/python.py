"""The Python teacher: an in-house model that lives in Python (a scikit-learn pipeline, a spaCy model, a rule
system), named as ``package.module:function`` and called with a batch of texts.

Calling it runs code, so only callables the admin listed in ``STILLROOM_TEACHER_CALLABLES`` may run: the name
is checked when a run is submitted and again when the job runs, before the module is imported (importing runs
code too), so a callable taken off the list after submit never runs.

The contract: the function takes a list of texts and returns one answer per text, in order; an answer is a
label (a string) or a mapping ``{"label": ..., "probs": {label: probability}}`` (``probs`` optional), read as
:class:`TeacherAnswer`. Every answer is checked before anything is recorded; a bad one is refused naming the row
and what was returned.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.domain.errors import InvalidInput
from core.store.config import get_settings
from core.teacher.outputs import Prediction, Progress, require_listed

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
CALLABLE_SHAPE = re.compile(rf"{_NAME}(\.{_NAME})*:{_NAME}")
SHOWN = 120  # characters of a bad answer quoted in a refusal


class PythonConfig(BaseModel):
    """The settings of a Python teacher run (recorded with the run, so the record names what answered)."""

    model_config = ConfigDict(extra="forbid")
    adapter: Literal["python"] = "python"
    callable: str = Field(min_length=1, max_length=300)
    labels: list[str] | None = None  # default: the dataset's label set
    batch_size: int = Field(default=64, ge=1, le=100_000)
    module_sha256: str | None = None  # the module file's hash, recorded when the run is made

    @field_validator("callable")
    @classmethod
    def _shape(cls, value: str) -> str:
        value = value.strip()
        if not CALLABLE_SHAPE.fullmatch(value):
            raise ValueError(f"callable {value[:80]!r} is not of the form package.module:function; name the "
                             "module, a colon, then the function, e.g. myteam.teacher:predict")
        return value


class TeacherAnswer(BaseModel):
    """One answer of a Python teacher: a label and, where it has them, the probability of each label."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    probs: dict[str, float] | None = None


def is_allowed(name: str) -> bool:
    """Whether the admin lists ``name`` in STILLROOM_TEACHER_CALLABLES now (nothing is imported)."""
    return name in get_settings().teacher_callables


def check_allowed(name: str) -> None:
    """GovernanceViolation unless the admin listed ``name`` exactly in STILLROOM_TEACHER_CALLABLES."""
    require_listed(name, what="the teacher callable", setting="STILLROOM_TEACHER_CALLABLES",
                   allowed=get_settings().teacher_callables)


def load_callable(name: str) -> tuple[Callable, str | None]:
    """The function ``name`` names and its module file's SHA-256, imported only once the allow-list allows it."""
    check_allowed(name)
    module_name, function_name = name.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"the teacher module {module_name!r} cannot be imported ({exc}): install it where the "
                           "jobs run, or fix the callable's name.", field="callable") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInput(f"{module_name!r} has no function {function_name!r}: name a function of the module.",
                           field="callable")
    source = inspect.getsourcefile(module) if hasattr(module, "__file__") else None
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source and Path(source).is_file() else None
    return function, digest


def read_answer(value: object, *, row: int, labels: list[str], name: str) -> Prediction:
    """One returned answer as a Prediction, or InvalidInput naming the row, what came back and the fix."""
    fix = (f"return one label of {', '.join(labels)} per text, or {{'label': ..., 'probs': {{label: probability}}}}")
    shown = repr(value)[:SHOWN]
    try:
        answer = TeacherAnswer(label=value) if isinstance(value, str) else TeacherAnswer.model_validate(
            dict(value) if isinstance(value, Mapping) else value)
    except (ValidationError, TypeError, ValueError):
        raise InvalidInput(f"{name} answered row {row} with {shown}, which is neither a label nor a "
                           f"label with probabilities; {fix}.", field="callable") from None
    if answer.label not in labels:
        raise InvalidInput(f"{name} answered row {row} with the label {answer.label!r}, not one of the labels; "
                           f"{fix}.", field="callable")
    if answer.probs is None:
        return Prediction(label=answer.label, confidence=None, probs=None, raw=answer.label)
    unknown = sorted(set(answer.probs) - set(labels))
    values = list(answer.probs.values())
    if unknown or any(not math.isfinite(p) or p < 0 for p in values) or sum(values) <= 0:
        why = f"names {unknown[0]!r}, not a label" if unknown else "is not a distribution"
        raise InvalidInput(f"{name} answered row {row} with probabilities {shown} that {why}; {fix}.",
                           field="callable")
    total = sum(values)
    probs = [answer.probs.get(label, 0.0) / total for label in labels]
    return Prediction(label=answer.label, confidence=probs[labels.index(answer.label)], probs=probs,
                      raw=answer.label)


class PythonAdapter:
    """Calls an allowed function on batches of texts and checks every answer it returns."""

    name = "python"

    def __init__(self, config: PythonConfig, *, labels: list[str]):
        self.config, self.labels = config, list(labels)
        self.batch_size = config.batch_size  # texts per call; latency timing sets it (core.evaluation.latency)
        self.function, self.module_sha256 = load_callable(config.callable)

    def predict(self, texts: Sequence[str], *, labels: list[str] | None = None,
                progress: Progress | None = None) -> list[Prediction]:
        labels = list(labels or self.labels)
        out: list[Prediction] = []
        size = self.batch_size
        for start in range(0, len(texts), size):
            batch = list(texts[start:start + size])
            answers = self.function(batch)
            answers = list(answers) if not isinstance(answers, str | bytes | Mapping) else None
            if answers is None or len(answers) != len(batch):
                got = "something that is not a list" if answers is None else f"{len(answers)} answers"
                raise InvalidInput(f"{self.config.callable} returned {got} for rows {start + 1}-{start + len(batch)} "
                                   f"({len(batch)} texts): return one answer per text, in order.", field="callable")
            out += [read_answer(a, row=start + i + 1, labels=labels, name=self.config.callable)
                    for i, a in enumerate(answers)]
            if progress:
                progress(len(out) / len(texts), f"{len(out):,} of {len(texts):,} texts")
        return out
