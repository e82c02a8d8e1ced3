"""The teacher's bar: the teacher answers an evaluation may judge a student against, and how they are named.

A relative-to-teacher floor, teacher agreement, and the truth where the holdout has no reference rest only on
teacher answers fixed before the student's predictions arrived: a teacher run of the project recorded before
the import began, answering every row of the holdout version scored (same ids, same text), that is either a
run Stillroom made (a local model or a chat endpoint, or an ensemble of trusted runs) or a file imported by
someone other than the predictions' author. A teacher column in the predictions file is never the bar: it is
compared with these answers and its mismatches counted. A trained student is judged against the teacher run it
was trained on, which existed before the student did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from sqlmodel import Session

from core.data import similarity
from core.domain.report import TeacherBarInfo
from core.store import vouched
from core.store.models import Dataset, Project, TeacherRun, User
from core.teacher import runs as teacher_runs
from core.teacher.config import EnsembleConfig, read_config

MADE_HERE = ("local", "http", "python")  # runs Stillroom made itself by asking the teacher
SHOWN = 3  # refused runs named in a sentence


@dataclass(frozen=True)
class TeacherBar:
    """The trusted teacher answers per holdout row (holdout order; None where the teacher gave none), or none."""

    answers: pd.Series
    run_id: int | None = None
    source: str | None = None  # "teacher run #4 by dana, locked at 2026-05-01 09:12 UTC"
    refused: list[str] = field(default_factory=list)  # why each other run of the project was not trusted

    def why_none(self) -> str:
        if not self.refused:
            return "the project has no teacher run"
        more = f"; and {len(self.refused) - SHOWN} more" if len(self.refused) > SHOWN else ""
        return "; ".join(self.refused[:SHOWN]) + more

    def info(self) -> TeacherBarInfo:
        """What the report keeps of the bar: the run, how it is named, why the others were refused."""
        return TeacherBarInfo(run=self.run_id, source=self.source, refused=list(self.refused))


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def describe(session: Session, run: TeacherRun) -> str:
    """How every report names the teacher run a figure rests on."""
    who = vouched.get(session, User, run.created_by)
    return (f"teacher run #{run.id} by {who.username if who else f'user #{run.created_by}'}, locked at "
            f"{_utc(run.created_at):%Y-%m-%d %H:%M} UTC")


def of_run(session: Session, run: TeacherRun) -> TeacherBar:
    """A trained student's bar: the teacher run it was trained on (its answers come from the evaluate job)."""
    return TeacherBar(answers=pd.Series(dtype=object), run_id=run.id, source=describe(session, run))


def _distrust(session: Session, run: TeacherRun, *, author: User, started: datetime) -> str | None:
    """Why ``run`` cannot set the bar for predictions ``author`` began importing at ``started`` (None: it can)."""
    if _utc(run.created_at) >= _utc(started):
        return f"run #{run.id} was recorded after these predictions arrived"
    if run.adapter == "file" and run.created_by == author.id:
        return f"run #{run.id} is a file imported by {author.username}, the student's author"
    if run.adapter == "ensemble":
        config = read_config(run)
        for member in config.runs if isinstance(config, EnsembleConfig) else []:
            inner = session.get(TeacherRun, int(member))
            why = (f"run #{member} is missing" if inner is None
                   else _distrust(session, inner, author=author, started=started))
            if why:
                return f"run #{run.id} is an ensemble whose member {why}"
        return None
    if run.adapter not in MADE_HERE + ("file",):
        return f"run #{run.id} came from an adapter ({run.adapter}) Stillroom does not vouch for"
    return None


def _answers(session: Session, run: TeacherRun, held: pd.DataFrame) -> tuple[pd.Series | None, str | None]:
    """The run's answer per holdout row, or why it does not answer this holdout version's items."""
    out = teacher_runs.load_outputs(session, run).astype({"id": str}).drop_duplicates("id").set_index("id")
    ids = held["id"].astype(str)
    missing = int((~ids.isin(out.index)).sum())
    if missing:
        return None, f"run #{run.id} has no answer for {missing:,} of the {len(ids):,} holdout rows scored"
    inputs = teacher_runs.dataset_table(session, session.get(Dataset, run.dataset_id)).drop_duplicates("id")
    theirs = ids.map(inputs.set_index("id")["text"]).astype(str)
    other = int((similarity.normalise(theirs).to_numpy() != similarity.normalise(held["text"].astype(str))
                 .to_numpy()).sum())
    if other:
        return None, f"run #{run.id} answered other texts under {other:,} holdout ids"
    return ids.map(out["label"]).astype("object").reset_index(drop=True), None


def for_import(session: Session, *, project: Project, author: User, started: datetime,
               held: pd.DataFrame) -> TeacherBar:
    """The newest teacher run of the project that may set the bar for ``author``'s predictions, or none."""
    refused = []
    for run in teacher_runs.list_runs(session, project_id=project.id):  # newest first
        why = _distrust(session, run, author=author, started=started)
        answers = None
        if why is None:
            answers, why = _answers(session, run, held)
        if why is None:
            return TeacherBar(answers=answers, run_id=run.id, source=describe(session, run), refused=refused)
        refused.append(why)
    return TeacherBar(answers=pd.Series([None] * len(held), dtype=object), refused=refused)
