"""The rows a student is distilled on: the teacher run's dataset minus the holdout, joined with
the kept teacher outputs, with the reference answer where one exists.

Free of torch so the rules (holdout fixed, no overlap, outputs well formed) can
be checked before a job starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from core.domain.errors import GovernanceViolation, InvalidInput
from core.ml.data import KDData
from core.store.artifacts import load_table
from core.store.models import Artifact, Dataset, Holdout, Project, TeacherFilter, TeacherRun
from core.teacher.filter import kept_outputs


@dataclass(frozen=True)
class PoolStats:
    dataset_rows: int
    holdout_excluded: int  # dataset rows left out because they are in the holdout
    without_teacher_output: int  # dataset rows the (filtered) teacher outputs do not cover
    rows: int  # rows distilled on (training and validation together)
    labelled: int  # of which carry a reference the student can learn from
    with_probs: int  # of which the teacher gave a distribution (the rest: one-hot of its label)
    references_outside_labels: int  # references not among the teacher's labels, ignored


def require_holdout(session: Session, *, project: Project) -> Holdout:
    holdout = session.exec(select(Holdout).where(Holdout.project_id == project.id)).first()
    if holdout is None:
        raise GovernanceViolation(
            f"Project {project.name!r} has no holdout: fix the holdout before training "
            "(`stillroom data holdout` or the Coverage and holdout page), so the student is never trained on it."
        )
    return holdout


def teacher_source(session: Session, *, project: Project, teacher_run_id: int,
                   filter_id: int | None = None) -> tuple[TeacherRun, TeacherFilter | None]:
    """The project's teacher run and (optionally) the filtering of it that training reads."""
    run = session.get(TeacherRun, teacher_run_id)
    if run is None or run.project_id != project.id:
        raise InvalidInput(f"project {project.name!r} has no teacher run #{teacher_run_id}: "
                           "pick one from `stillroom teacher runs`.", field="teacher_run")
    if filter_id is None:
        return run, None
    filt = session.get(TeacherFilter, filter_id)
    if filt is None or filt.project_id != project.id or filt.teacher_run_id != run.id:
        raise InvalidInput(f"teacher run #{run.id} has no filter #{filter_id}: pick a filter of that run.",
                           field="filter")
    return run, filt


def training_rows(session: Session, *, project: Project, teacher_run: TeacherRun,
                  teacher_filter: TeacherFilter | None = None) -> tuple[KDData, PoolStats]:
    """The distillation rows, refusing when no holdout is fixed or the rows overlap it."""
    from core.data import holdout as holdout_rules  # lazy: datasketch and scipy (a second), not for every reader

    require_holdout(session, project=project)
    dataset = session.get(Dataset, teacher_run.dataset_id)
    df = load_table(session.get(Artifact, dataset.artifact_id))
    held = holdout_rules.holdout_ids(session, project_id=project.id)
    pool = df[~df["id"].astype(str).isin(held)]
    outputs = kept_outputs(session, filter_or_run=teacher_filter or teacher_run)
    cols = [c for c in ("label", "probs") if c in outputs.columns]
    joined = pool.merge(outputs[["id", *cols]].astype({"id": str}), on="id", how="inner")
    joined = joined.sort_values("id", kind="stable").reset_index(drop=True)
    # Exact and near overlap with the holdout (beyond shared ids) is core.data's rule to apply.
    holdout_rules.check_no_overlap(session, project=project, df=joined[df.columns])
    if len(joined) < 10:
        raise InvalidInput(f"only {len(joined)} rows of dataset #{dataset.id} outside the holdout have teacher "
                           "outputs: at least 10 are needed to train and validate.", field="teacher_run")
    data, with_probs, outside = _targets(joined, labels=list(teacher_run.labels), run_id=teacher_run.id)
    stats = PoolStats(
        dataset_rows=len(df), holdout_excluded=len(df) - len(pool), without_teacher_output=len(pool) - len(joined),
        rows=len(joined), labelled=int((data.reference >= 0).sum()), with_probs=with_probs,
        references_outside_labels=outside,
    )
    return data, stats


def _targets(joined: pd.DataFrame, *, labels: list[str], run_id: int) -> tuple[KDData, int, int]:
    index = {label: i for i, label in enumerate(labels)}
    probs = np.zeros((len(joined), len(labels)), dtype=np.float32)
    with_probs = 0
    has_probs = "probs" in joined.columns
    for i, row in enumerate(joined.itertuples(index=False)):
        p = row.probs if has_probs else None
        if p is not None and not (isinstance(p, float) and math.isnan(p)):
            probs[i] = _distribution(p, n=len(labels), row_id=row.id, run_id=run_id)
            with_probs += 1
            continue
        label = getattr(row, "label", None)
        if label not in index:
            raise InvalidInput(f"teacher run #{run_id}, row id={row.id}: column label is {label!r}, not one of "
                               f"{labels}, and the row has no probs; filter the row out or fix the run.",
                               field="label")
        probs[i, index[label]] = 1.0
    refs = joined["reference"] if "reference" in joined.columns else pd.Series([None] * len(joined))
    reference = np.array([index.get(r, -1) if isinstance(r, str) else -1 for r in refs], dtype=np.int64)
    outside = int(sum(1 for r in refs if isinstance(r, str) and r not in index))
    return KDData(texts=joined["text"].astype(str).tolist(), probs=probs, reference=reference,
                  labels=labels), with_probs, outside


def _distribution(p, *, n: int, row_id, run_id: int) -> np.ndarray:
    arr = np.asarray(list(p), dtype=np.float64)
    if arr.shape != (n,) or not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise InvalidInput(f"teacher run #{run_id}, row id={row_id}: column probs must hold {n} non-negative "
                           "numbers (one per label, in the run's label order); fix or re-run the teacher.",
                           field="probs")
    return (arr / arr.sum()).astype(np.float32)


@dataclass(frozen=True)
class PretrainTexts:
    """The project's own inputs a student may be pre-trained on (unlabelled; the holdout left out)."""

    texts: list[str]
    datasets: int  # dataset versions read (prompts and production logs)
    rows: int  # their rows together
    holdout_by_id: int  # rows left out because their id is a holdout row's
    holdout_by_text: int  # rows left out because their text equals or nearly equals a holdout row's
    duplicates: int  # further rows whose normalised text was already taken


def pretraining_texts(session: Session, *, project: Project) -> PretrainTexts:
    """Every distinct text of the project's imported datasets (prompts and production logs alike) that is not in
    the holdout: not by id, and not by equal or nearly equal text (the leakage check's normalisation and MinHash
    threshold), so no holdout text reaches masked-language-model pre-training through another dataset."""
    from core.data import datasets as project_datasets  # lazy: with holdout_rules, below
    from core.data import holdout as holdout_rules  # lazy: datasketch and scipy (a second), not for every reader
    from core.data import similarity  # lazy: pyarrow compute

    require_holdout(session, project=project)
    found = project_datasets.list_datasets(session, project_id=project.id)
    frames = [project_datasets.rows(session, d)[["id", "text"]] for d in found]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": [], "text": []})
    df = df.astype({"id": str, "text": str})
    held = holdout_rules.holdout_rows(session, project_id=project.id)
    by_id = df["id"].isin(set(held["id"].astype(str)))
    rest = df[~by_id].reset_index(drop=True)
    rest = rest.assign(id=[f"row-{i}" for i in range(len(rest))])  # ids may repeat across datasets
    leaked = holdout_rules.overlap(held.reset_index(drop=True), rest).leaked_ids if len(rest) else frozenset()
    kept = rest[~rest["id"].isin(leaked)]
    distinct = kept.loc[~similarity.normalise(kept["text"]).duplicated()]
    return PretrainTexts(texts=distinct["text"].tolist(), datasets=len(found), rows=len(df),
                         holdout_by_id=int(by_id.sum()), holdout_by_text=len(leaked),
                         duplicates=len(kept) - len(distinct))
