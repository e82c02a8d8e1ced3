"""The review stream: one disagreement at a time, in the queue's order (critical slices first, then severe
classes, then the student's least confident answers), the next unreviewed one after each verdict, previous and
next to move through the queue, and the progress against the reviews the gate requires.

The order is ``review.disagreement_queue``'s and the progress is ``review.review_coverage`` (the rule an
approving sign-off checks): this module only walks them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import chain

import pandas as pd
from sqlmodel import Session

from core.review.review import SliceCoverage, disagreement_queue, my_verdicts, review_coverage
from core.store.models import Project, User


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 example``, ``2 examples``: a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def next_unreviewed(order: Sequence[str], reviewed: Collection[str], *, after: str | None = None) -> str | None:
    """The first item of ``order`` not in ``reviewed``, looking from just after ``after`` (from the start when
    ``after`` is None or not in the order) and wrapping round, so a skipped item comes back; None when every
    item is reviewed."""
    start = order.index(after) + 1 if after in order else 0
    return next((i for i in chain(order[start:], order[:start]) if i not in reviewed), None)


def neighbours(order: Sequence[str], at: str) -> tuple[str | None, str | None]:
    """The items before and after ``at`` in ``order`` (None at either end)."""
    k = order.index(at)
    return (order[k - 1] if k > 0 else None), (order[k + 1] if k + 1 < len(order) else None)


@dataclass(frozen=True)
class StreamItem:
    """One disagreement as a validator judges it."""

    item_id: str
    text: str
    reference: str | None
    teacher_label: str | None
    student_label: str | None
    critical_slice: bool
    severe_class: bool
    target: str | None  # imported text: the target beside the student's answer
    diff: str | None  # imported text: core's word diff
    your_verdict: str | None  # this validator's verdict, when they already gave one


@dataclass(frozen=True)
class StreamStep:
    """Where a validator stands in the stream."""

    item: StreamItem | None  # None only when the queue is empty
    position: int  # 1-based place of ``item`` in the queue
    total: int  # items in the queue
    previous_id: str | None
    next_id: str | None
    after_verdict_id: str | None  # where a verdict on ``item`` leads: the next unreviewed item, None when done
    reviewed_by_you: int  # items of the queue this validator judged
    coverage: list[SliceCoverage]  # every validator's reviews per critical slice against the gate's minimum
    not_in_queue: str | None = None  # an item asked for (a deep link) that the queue does not hold

    @property
    def done(self) -> bool:
        return self.reviewed_by_you >= self.total

    def progress(self) -> str:
        """The progress in one sentence: the queue, then each critical slice against the required reviews."""
        mine = f"You reviewed {self.reviewed_by_you:,} of {counted(self.total, 'disagreement')}"
        if not self.coverage:
            return mine + "; the gate names no critical slice."
        slices = ", ".join(f"{c.column}={c.value} {c.reviewed:,} of {c.required:,}{' (met)' if c.met else ''}"
                           for c in self.coverage)
        return f"{mine}; reviews per critical slice (every validator): {slices}."


def _text(value: object) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _item(row: pd.Series, your_verdict: str | None) -> StreamItem:
    return StreamItem(
        item_id=str(row["id"]), text=str(row["text"]), reference=_text(row.get("reference")),
        teacher_label=_text(row.get("teacher_label")), student_label=_text(row.get("student_label")),
        critical_slice=bool(row["critical_slice"]), severe_class=bool(row["severe_class"]),
        target=_text(row.get("target")), diff=_text(row.get("diff")) or None, your_verdict=your_verdict)


def review_stream(
    session: Session, *, actor: User, project: Project, evaluation_id: int, at: str | None = None,
    slice: tuple[str, str] | None = None,  # noqa: A002 (disagreement_queue's name)
    predictions: pd.DataFrame | None = None,
) -> StreamStep:
    """The stream at item ``at`` (None: the first item ``actor`` has not judged; an item outside the queue is
    named in ``not_in_queue`` and the stream opens on the first unjudged one instead). Blind: only ``actor``'s
    own verdicts mark an item reviewed."""
    queue = disagreement_queue(session, project=project, evaluation_id=evaluation_id, slice=slice, limit=None,
                               predictions=predictions)
    order = queue.items["id"].astype(str).tolist()
    mine = {v.item_id: v.verdict for v in my_verdicts(session, actor=actor, evaluation_id=evaluation_id)}
    current = at if at in order else next_unreviewed(order, mine) or (order[0] if order else None)
    coverage = review_coverage(session, project=project, evaluation_id=evaluation_id, predictions=predictions)
    missing = at if at is not None and at not in order else None
    reviewed = sum(i in mine for i in order)
    if current is None:
        return StreamStep(None, 0, 0, None, None, None, reviewed, coverage, missing)
    k = order.index(current)
    previous_id, next_id = neighbours(order, current)
    return StreamStep(
        item=_item(queue.items.iloc[k], mine.get(current)), position=k + 1, total=len(order),
        previous_id=previous_id, next_id=next_id,
        after_verdict_id=next_unreviewed(order, {*mine, current}, after=current),
        reviewed_by_you=reviewed, coverage=coverage, not_in_queue=missing)
