"""A pretrained language identifier as a Stillroom Python teacher: lingua (``lingua-language-detector`` on PyPI,
Apache 2.0), whose wheel carries its n-gram models, so nothing is downloaded when it runs.

Two callables, for ``--adapter python --callable benchmarks.teachers.lingua_teacher:identify`` (the admin lists
the name in ``STILLROOM_TEACHER_CALLABLES``):

- ``identify``: the high-accuracy mode over all of lingua's 75 languages, every model preloaded (about 1.2 GB);
- ``identify_low``: the low-accuracy mode, every language preloaded (about 0.13 GB): a smoke run's teacher.

Each takes a batch of texts and answers, per text, the most likely language (lingua's name in lower case, e.g.
``english``) with lingua's confidence for every language it gives more than zero, or ``unknown`` where lingua
gives every language zero (digits, punctuation, emoji, text too short to judge). The teacher's label set is
``LABELS``: the 75 languages and ``unknown``.
"""

from __future__ import annotations

from functools import cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

UNKNOWN = "unknown"
LABELS = sorted(language.name.lower() for language in Language.all()) + [UNKNOWN]
MODES = ("high", "low")


@cache
def detector(mode: str = "high") -> LanguageDetector:
    """lingua over all its languages with every model loaded now (not on the first text that needs it), so no
    answer waits for a model to load; built once per process and mode."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    builder = LanguageDetectorBuilder.from_all_languages()
    if mode == "low":
        builder = builder.with_low_accuracy_mode()
    return builder.with_preloaded_language_models().build()


def answers(texts: list[str], *, mode: str = "high") -> list[str | dict]:
    """One answer per text, in order: ``{"label": language, "probs": {language: confidence}}``, or ``unknown``."""
    out: list[str | dict] = []
    for values in detector(mode).compute_language_confidence_values_in_parallel(list(texts)):
        probs = {v.language.name.lower(): float(v.value) for v in values if v.value > 0}
        out.append({"label": max(probs, key=probs.__getitem__), "probs": probs} if probs else UNKNOWN)
    return out


def label_of(answer: str | dict) -> str:
    return answer if isinstance(answer, str) else answer["label"]


def identify(texts: list[str]) -> list[str | dict]:
    """The teacher: lingua's high-accuracy mode over all 75 languages, models preloaded."""
    return answers(texts, mode="high")


def identify_low(texts: list[str]) -> list[str | dict]:
    """The smoke run's teacher: lingua's low-accuracy mode over all 75 languages, models preloaded."""
    return answers(texts, mode="low")
