"""Shared helpers for the rollout and monitoring tests: a shipped project and request logs written by hand
in the serving contract's JSON Lines shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from review_helpers import approve, make_evaluation, passing_predictions

from core.decision import decision
from core.rollout import logs
from core.store.models import Project

MOD = "Comment moderation"


def ship(session, demo: dict, gated: Project) -> Project:
    """The gated moderation project with a passing, approved evaluation (threshold 0.5) its sponsor shipped."""
    evaluation = make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions())
    approve(session, demo, gated, evaluation, threshold=0.5)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes the gate",
                    evaluation_id=evaluation.id)
    return gated


def request(i: int, *, stage: str, ts: datetime, category: str = "ok", language: str = "en",
            student: str | None = None, teacher: str | None = "same", confidence: float = 0.9,
            latency_ms: float = 5.0, input_chars: int = 10) -> dict:
    """One logged request; the teacher's answer is the student's unless ``teacher`` names another."""
    student = student or category
    served_by = "teacher" if stage == "shadow" else "student"
    return {"ts": ts.isoformat(), "request_id": f"r{i}", "input_sha256": f"{i:064x}", "input_chars": input_chars,
            "slices": {"category": category, "language": language}, "stage": stage, "served_by": served_by,
            "student_label": student, "student_confidence": confidence,
            "teacher_label": None if teacher is None else (student if teacher == "same" else teacher),
            "teacher_asked": teacher is not None, "reason": "shadow" if stage == "shadow" else "sampled",
            "latency_ms": latency_ms}


def traffic(n: int, *, stage: str, disagree_every: int = 0, start: datetime | None = None, **kwargs) -> list[dict]:
    """``n`` requests a millisecond apart, categories cycling ok, spam, insult (every 20th a threat)."""
    start = start or datetime.now(UTC) + timedelta(seconds=1)
    out = []
    for i in range(n):
        category = "threat" if i % 20 == 19 else ("ok", "spam", "insult")[i % 3]
        teacher = "other" if disagree_every and i % disagree_every == 0 else "same"
        out.append(request(i, stage=stage, ts=start + timedelta(milliseconds=i), category=category,
                           teacher=teacher, **kwargs))
    return out


def write_log(project_id: int, records: list[dict], *, partial_tail: str = "") -> None:
    """Append the records to the day files their timestamps fall in, then an unterminated ``partial_tail``."""
    folder = logs.log_dir(project_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = None
    for record in records:
        day = datetime.fromisoformat(record["ts"]).strftime("%Y%m%d")
        path = folder / f"requests-{day}.jsonl"
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    if partial_tail:
        path = path or folder / f"requests-{datetime.now(UTC):%Y%m%d}.jsonl"
        with open(path, "a", encoding="utf-8") as f:
            f.write(partial_tail)


def live_like(predictions: pd.DataFrame, *, threat_share: float = 0.0, n: int = 0) -> list[dict]:
    """Requests mirroring the evaluation's examples, then ``n`` extra threats if asked."""
    start = datetime.now(UTC)
    rows = [(p.category, p.language, len(p.text), p.student_confidence) for p in predictions.itertuples()]
    rows += [("threat", "en", 10, 0.9)] * n
    return [{"ts": (start + timedelta(milliseconds=i)).isoformat(), "request_id": f"r{i}",
             "input_sha256": "0" * 64, "input_chars": chars, "slices": {"category": cat, "language": lang},
             "stage": "shadow", "served_by": "teacher", "student_label": cat, "student_confidence": conf,
             "teacher_label": cat, "teacher_asked": True, "reason": "shadow", "latency_ms": 3.0}
            for i, (cat, lang, chars, conf) in enumerate(rows)]
