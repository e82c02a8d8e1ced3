"""Filtering a teacher's errors by policy before students learn from them.

Policies combine: drop below a confidence threshold, drop where the reference
answer disagrees with the teacher; with neither, every readable output is kept.
Answers that named no label are always dropped ("unparseable"): a student
cannot learn from them. Kept and dropped rows are stored as artifacts so the
driver can look at what was dropped and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.domain.display import tidy
from core.domain.errors import InvalidInput, NotFound
from core.domain.roles import Role
from core.store import audit
from core.store.artifacts import load_table, store_table
from core.store.models import Artifact, Dataset, Project, TeacherFilter, TeacherRun, User
from core.teacher import runs
from core.teacher.outputs import COLUMNS

REASONS = {
    "unparseable": "the teacher's answer named none of the labels",
    "reference-disagrees": "the reference answer differs from the teacher's label",
    "below-confidence": "the teacher's confidence is below the threshold",
    "no-confidence": "the teacher gave no confidence to compare with the threshold",
}


@dataclass(frozen=True)
class FilterPolicy:
    min_confidence: float | None = None  # drop outputs less confident than this
    drop_reference_disagreement: bool = False  # drop outputs a reference answer contradicts

    def __post_init__(self) -> None:
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise InvalidInput(f"min_confidence {self.min_confidence}: give a number between 0 and 1 "
                               "(for example 0.8).", field="min_confidence")

    @property
    def keeps_all(self) -> bool:
        return self.min_confidence is None and not self.drop_reference_disagreement


def reasons_for(outputs: pd.DataFrame, references: pd.Series, policy: FilterPolicy) -> pd.Series:
    """Per output row, the reasons it is dropped, joined by "; " ("" when it is kept)."""
    checks: list[tuple[str, pd.Series]] = [("unparseable", outputs["label"].isna())]
    if policy.drop_reference_disagreement:
        ref = outputs["id"].map(references)
        known = ref.notna() & ref.astype(str).str.strip().ne("")
        checks.append(("reference-disagrees", known & outputs["label"].notna()
                       & ref.astype(str).str.strip().ne(outputs["label"])))
    if policy.min_confidence is not None:
        conf = outputs["confidence"]
        checks.append(("below-confidence", conf.notna() & (conf < policy.min_confidence)))
        checks.append(("no-confidence", conf.isna() & outputs["label"].notna()))
    parts = pd.DataFrame({name: mask.map({True: name, False: ""}) for name, mask in checks})
    return parts.apply(lambda row: "; ".join(v for v in row if v), axis=1).astype(str)


def apply_filter(session: Session, *, actor: User, project: Project, run_id: int,
                 policy: FilterPolicy) -> TeacherFilter:
    """Split a run's outputs by policy (driver only); records counts per reason with the kept and dropped rows."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="filter teacher outputs")
    run = runs.get_run(session, run_id)
    if run.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no teacher run #{run_id}.", field="run")
    outputs = runs.load_outputs(session, run)
    df = runs.dataset_table(session, session.get(Dataset, run.dataset_id))
    refs = df.set_index("id")["reference"] if "reference" in df.columns else pd.Series(dtype=object)
    reasons = reasons_for(outputs, refs, policy)
    dropped_mask = reasons.ne("")
    kept = outputs.loc[~dropped_mask, list(COLUMNS)].reset_index(drop=True)
    dropped = outputs.loc[dropped_mask, list(COLUMNS)].assign(reasons=reasons[dropped_mask]).reset_index(drop=True)
    counts = {"total": len(outputs), "kept": len(kept), "dropped": len(dropped),
              "by_reason": {name: int(reasons.str.contains(name, regex=False).sum()) for name in REASONS}}
    meta = {"teacher_run": run.id, "policy": asdict(policy)}
    kept_art = store_table(session, project=project, actor=actor, df=kept, kind="teacher-kept", meta=meta)
    dropped_art = store_table(session, project=project, actor=actor, df=dropped, kind="teacher-dropped", meta=meta)
    filt = TeacherFilter(project_id=project.id, teacher_run_id=run.id, policy=asdict(policy), counts=counts,
                         kept_artifact_id=kept_art.id, dropped_artifact_id=dropped_art.id, created_by=actor.id)
    session.add(filt)
    session.flush()
    audit.record(session, actor=actor, action="teacher.filter", entity="teacher_filter", entity_id=filt.id,
                 project_id=project.id, payload={"teacher_run": run.id, "policy": asdict(policy), "counts": counts,
                                                 "kept_sha256": kept_art.sha256, "dropped_sha256": dropped_art.sha256})
    session.commit()
    return filt


def kept_outputs(session: Session, *, filter_or_run: TeacherFilter | TeacherRun) -> pd.DataFrame:
    """The teacher outputs training reads (teacher-run schema): a filter's kept rows, or a run's readable rows."""
    if isinstance(filter_or_run, TeacherFilter):
        return load_table(session.get(Artifact, filter_or_run.kept_artifact_id))[list(COLUMNS)]
    outputs = load_table(session.get(Artifact, filter_or_run.artifact_id))
    return outputs.loc[outputs["label"].notna(), list(COLUMNS)].reset_index(drop=True)


def get_filter(session: Session, filter_id: int) -> TeacherFilter:
    filt = session.get(TeacherFilter, filter_id)
    if filt is None:
        raise NotFound(f"no teacher filter #{filter_id}: list them with `stillroom teacher runs PROJECT`.",
                       field="filter")
    return filt


def list_filters(session: Session, *, project_id: int, run_id: int | None = None) -> list[TeacherFilter]:
    query = select(TeacherFilter).where(TeacherFilter.project_id == project_id)
    if run_id is not None:
        query = query.where(TeacherFilter.teacher_run_id == run_id)
    return list(session.exec(query.order_by(col(TeacherFilter.id).desc())).all())


def kept_sentence(filt: TeacherFilter) -> str:
    return f"Filter #{filt.id}: kept {filt.counts['kept']:,} of {filt.counts['total']:,} outputs."


def filters_table(filters: list[TeacherFilter]) -> pd.DataFrame:
    """One row per filter: its policy, what it kept and dropped, and the rows each reason dropped."""
    return tidy([{
        "Filter": f.id, "Run": f.teacher_run_id, "Min confidence": f.policy.get("min_confidence"),
        "Drop disagreement": f.policy.get("drop_reference_disagreement"), "Kept": f.counts["kept"],
        "Dropped": f.counts["dropped"], **{reason: f.counts["by_reason"].get(reason, 0) for reason in REASONS},
    } for f in filters])


def dropped_rows(session: Session, *, filter_id: int, reason: str | None = None) -> pd.DataFrame:
    """What a filter dropped and why, with the input text and reference beside the teacher's answer."""
    if reason is not None and reason not in REASONS:
        raise InvalidInput(f"reason {reason!r}: use one of {', '.join(REASONS)}.", field="reason")
    filt = get_filter(session, filter_id)
    dropped = load_table(session.get(Artifact, filt.dropped_artifact_id))
    run = session.get(TeacherRun, filt.teacher_run_id)
    df = runs.dataset_table(session, session.get(Dataset, run.dataset_id))
    cols = ["id", "text"] + (["reference"] if "reference" in df.columns else [])
    out = dropped.merge(df[cols], on="id", how="left")
    if reason is not None:
        out = out[out["reasons"].str.split("; ").map(lambda rs: reason in rs)]
    order = ["id", "text", *(["reference"] if "reference" in out.columns else []), "label", "confidence", "reasons",
             "raw"]
    return out[order].reset_index(drop=True)
