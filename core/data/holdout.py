"""The holdout: fixed once per project before any training, stratified by slice, and never trained on.

Training reads ``holdout_ids`` and ``check_no_overlap`` (core.training.pool):
rows whose text equals or nearly equals a holdout row are refused, with the
same normalisation and MinHash threshold as deduplication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.data import datasets, importer, similarity
from core.data.datasets import copy_origin
from core.domain import textsafe
from core.domain.errors import GovernanceViolation, InvalidInput
from core.domain.mapping import StoredMapping
from core.domain.roles import Role
from core.store import audit, vouched
from core.store.artifacts import load_table, store_table
from core.store.models import Artifact, Dataset, Holdout, HoldoutVersion, Project, TeacherRun, User

MAX_FRACTION = 0.5


@dataclass(frozen=True)
class Leak:
    kind: str  # "exact" or "near"
    row_id: str
    text: str
    holdout_id: str
    holdout_text: str
    similarity: float


@dataclass(frozen=True)
class LeakageReport:
    """Rows outside the holdout whose text equals or nearly equals a holdout row."""

    checked: int
    exact: int
    near: int
    threshold: float
    examples: list[Leak]
    leaked_ids: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def leaked(self) -> int:
        return self.exact + self.near

    def sentence(self) -> str:
        if not self.leaked:
            return f"No overlap: none of {self.checked:,} rows matches a holdout row."
        return (f"{self.leaked:,} of {self.checked:,} rows overlap the holdout ({self.exact:,} exact, "
                f"{self.near:,} near duplicates at similarity >= {self.threshold:g}).")


def fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 over the sorted (id, normalised text) pairs: the holdout's identity, whatever the file."""
    lines = (df["id"].astype(str) + "\x1f" + similarity.normalise(df["text"])).sort_values()
    return hashlib.sha256("\n".join(lines.tolist()).encode("utf-8")).hexdigest()


def get_holdout(session: Session, *, project_id: int) -> Holdout | None:
    """The holdout as first fixed (version 1); ``current`` is the version evaluations use."""
    return session.exec(select(Holdout).where(Holdout.project_id == project_id)).first()


@dataclass(frozen=True)
class Version:
    """One version of the project's holdout: the first as fixed, or a later one that added rows."""

    version: int
    fingerprint: str
    n_rows: int
    artifact_id: int
    dataset_id: int


def versions(session: Session, *, project_id: int) -> list[Version]:
    first = get_holdout(session, project_id=project_id)
    if first is None:
        return []
    later = vouched.rows(session, HoldoutVersion, HoldoutVersion.project_id == project_id,
                         order_by=col(HoldoutVersion.version))
    return [Version(1, first.fingerprint, first.n_rows, first.artifact_id, first.dataset_id)] + [
        Version(v.version, v.fingerprint, v.n_rows, v.artifact_id, v.dataset_id) for v in later]


def current(session: Session, *, project_id: int) -> Version | None:
    """The holdout version every new evaluation is scored on: the latest."""
    found = versions(session, project_id=project_id)
    return found[-1] if found else None


def holdout_rows(session: Session, *, project_id: int) -> pd.DataFrame | None:
    """The rows of the current holdout version (None when no holdout is fixed)."""
    version = current(session, project_id=project_id)
    return None if version is None else load_table(session.get(Artifact, version.artifact_id))


def holdout_ids(session: Session, *, project_id: int) -> set[str]:
    """The ids of the project's holdout rows (empty when no holdout is fixed)."""
    rows = holdout_rows(session, project_id=project_id)
    return set() if rows is None else set(rows["id"].astype(str))


def stratified_mask(df: pd.DataFrame, *, by: Sequence[str], target: int, seed: int) -> np.ndarray:
    """Pick ``target`` rows at random so each stratum keeps its share (largest remainders round)."""
    n = len(df)
    groups = df.groupby(list(by), sort=True).ngroup().to_numpy() if by else np.zeros(n, dtype=np.int64)
    sizes = np.bincount(groups)
    exact = sizes * target / n
    quota = np.floor(exact).astype(np.int64)
    extra = target - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:extra]] += 1
    key = np.random.default_rng(seed).random(n)
    order = np.lexsort((key, groups))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[groups[order]]
    return rank < quota[groups]


def _target(n_rows: int, fraction: float | None, n: int | None, *, unit: str = "rows") -> int:
    """How many rows (or queries) to hold out: a fraction or a count, both capped at ``MAX_FRACTION``."""
    if (fraction is None) == (n is None):
        raise InvalidInput("give the holdout's size as a fraction or as a number of rows, not both or neither.",
                           field="fraction")
    if fraction is not None:
        if not 0 < fraction <= MAX_FRACTION:
            raise InvalidInput(f"holdout fraction {fraction} is outside 0 to {MAX_FRACTION}; a fifth (0.2) is "
                               "usual.", field="fraction")
        n = round(fraction * n_rows)
    cap = int(MAX_FRACTION * n_rows)
    if not 1 <= n <= cap:
        raise InvalidInput(f"a holdout of {n} {unit} does not fit a dataset of {n_rows} {unit}: the holdout may "
                           f"take at most {MAX_FRACTION:.0%} of them, so pick between 1 and {cap} {unit}.",
                           field="n")
    return n


def without_copies(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows a holdout may be drawn from: neither an oversampled copy (core.data.datasets marks their ids)
    nor a row that was copied (its copies would sit in training with the same text)."""
    origin = copy_origin(df["id"])
    drop = origin.notna().to_numpy() | df["id"].astype(str).isin(set(origin.dropna())).to_numpy()
    return df[~drop].reset_index(drop=True), int(drop.sum())


def _draw(df: pd.DataFrame, *, by: list[str], group_by: str | None, fraction: float | None, n: int | None,
          seed: int) -> pd.DataFrame:
    """Stratified rows, or, with ``group_by`` (a ranking's query id), whole groups: never half a query."""
    if group_by is None:
        return df[stratified_mask(df, by=by, target=_target(len(df), fraction, n), seed=seed)]
    groups = df.groupby(group_by, sort=True).first().reset_index()
    chosen = groups[stratified_mask(groups, by=by, target=_target(len(groups), fraction, n, unit="groups"),
                                    seed=seed)]
    return df[df[group_by].isin(set(chosen[group_by]))]


def fix_holdout(
    session: Session, *, actor: User, project: Project, dataset_id: int, fraction: float | None = None,
    n: int | None = None, stratify_by: Sequence[str] = (), seed: int = 0, group_by: str | None = None,
) -> Holdout:
    """Draw and record the project's holdout; refused when one is already fixed (driver only).

    Oversampled copies are never drawn; with ``group_by`` (a ranking's query id) ``fraction`` and ``n`` count
    groups and a group is held out whole."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="fix the holdout")
    existing = get_holdout(session, project_id=project.id)
    if existing is not None:
        raise GovernanceViolation(
            f"Project {project.name!r} already has its holdout ({existing.n_rows:,} rows from dataset "
            f"#{existing.dataset_id}, fingerprint {existing.fingerprint[:16]}): it is fixed once so every "
            "evaluation is scored on the same unseen rows; evaluate on it as it is.")
    dataset = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    df, copies = without_copies(datasets.rows(session, dataset))
    stratify_by = list(dict.fromkeys(stratify_by))
    unknown = [c for c in [*stratify_by, *([group_by] if group_by else [])] if c not in datasets.slice_columns(df)]
    if unknown:
        raise InvalidInput(f"dataset #{dataset.id} has no slice column {unknown[0]!r} to stratify or group by; use "
                           f"one of: {', '.join(datasets.slice_columns(df)) or 'none'}.", field="stratify_by")
    chosen = _draw(df, by=stratify_by, group_by=group_by, fraction=fraction, n=n, seed=seed).reset_index(drop=True)
    digest = fingerprint(chosen)
    try:
        art = store_table(session, project=project, actor=actor, df=chosen, kind="holdout",
                          meta={"dataset_id": dataset.id, "fingerprint": digest})
        holdout = Holdout(project_id=project.id, dataset_id=dataset.id, artifact_id=art.id, fingerprint=digest,
                          n_rows=len(chosen), stratify_by=stratify_by, seed=seed, created_by=actor.id)
        session.add(holdout)
        session.flush()
        audit.record(session, actor=actor, action="holdout.fix", entity="holdout", entity_id=holdout.id,
                     project_id=project.id,
                     payload={"dataset_id": dataset.id, "n_rows": len(chosen), "fingerprint": digest,
                              "stratify_by": stratify_by, "seed": seed, "sha256": art.sha256,
                              "group_by": group_by, "copies_excluded": copies})
        session.commit()
    except BaseException:
        session.rollback()  # and core.store.artifacts removes the file this transaction wrote
        raise
    return holdout


def leakage(session: Session, *, project: Project, df: pd.DataFrame,
            threshold: float = similarity.DEFAULT_THRESHOLD, examples: int = 5) -> LeakageReport:
    """Rows of ``df`` outside the holdout (by id) whose text equals or nearly equals a holdout row."""
    held = holdout_rows(session, project_id=project.id)
    if held is None:
        return LeakageReport(checked=len(df), exact=0, near=0, threshold=threshold, examples=[])
    rows = df[~df["id"].astype(str).isin(set(held["id"].astype(str)))].reset_index(drop=True)
    return overlap(held.reset_index(drop=True), rows, threshold=threshold, examples=examples)


def overlap(held: pd.DataFrame, rows: pd.DataFrame, *, threshold: float = similarity.DEFAULT_THRESHOLD,
            examples: int = 5) -> LeakageReport:
    """Rows of ``rows`` whose text equals or nearly equals a row of ``held`` (same normalisation and MinHash
    threshold as deduplication)."""
    h_norm = similarity.normalise(held["text"]).reset_index(drop=True)
    r_norm = similarity.normalise(rows["text"]).reset_index(drop=True)
    first_of = pd.Series(np.arange(len(h_norm)), index=h_norm.to_numpy()).groupby(level=0).first()
    exact = r_norm.isin(first_of.index).to_numpy()
    leaks = [Leak("exact", str(rows["id"].iloc[i]), str(rows["text"].iloc[i]),
                  str(held["id"].iloc[first_of[r_norm.iloc[i]]]), str(held["text"].iloc[first_of[r_norm.iloc[i]]]),
                  1.0) for i in np.flatnonzero(exact)[:examples]]
    rest = np.flatnonzero(~exact)
    both = pd.concat([h_norm, r_norm.iloc[rest]], ignore_index=True)
    sig, usable = similarity.signatures(both)
    priority = np.r_[np.zeros(len(h_norm), np.int8), np.ones(len(rest), np.int8)]
    left, right, sim = similarity.candidate_pairs(sig, usable, threshold=threshold, priority=priority)
    cross = (left < len(h_norm)) & (right >= len(h_norm))
    near_rows, first = np.unique(right[cross] - len(h_norm), return_index=True)
    for j, k in zip(near_rows[:examples], first[:examples], strict=True):
        i, h = rest[j], left[cross][k]
        leaks.append(Leak("near", str(rows["id"].iloc[i]), str(rows["text"].iloc[i]), str(held["id"].iloc[h]),
                          str(held["text"].iloc[h]), round(float(sim[cross][k]), 3)))
    ids = rows["id"].astype(str).to_numpy()
    leaked_ids = frozenset(ids[exact]) | frozenset(ids[rest[near_rows]])
    return LeakageReport(checked=len(rows), exact=int(exact.sum()), near=len(near_rows), threshold=threshold,
                         examples=leaks, leaked_ids=leaked_ids)


def dataset_leakage(session: Session, *, project: Project, dataset_id: int) -> LeakageReport:
    """The leakage check of a stored dataset, for the Coverage and holdout page."""
    dataset = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    return leakage(session, project=project, df=datasets.rows(session, dataset))


def drop_overlap(session: Session, *, actor: User, project: Project, dataset_id: int,
                 threshold: float = similarity.DEFAULT_THRESHOLD) -> tuple[Dataset, LeakageReport]:
    """Store the dataset without the rows that equal or nearly equal a holdout row, as a new version."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="drop rows overlapping the holdout")
    parent = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    df = datasets.rows(session, parent)
    report = leakage(session, project=project, df=df, threshold=threshold)
    if not report.leaked:
        raise InvalidInput(f"dataset #{parent.id} does not overlap the holdout: nothing to drop, train on it as it "
                           "is.", field="dataset")
    kept = df[~df["id"].astype(str).isin(report.leaked_ids)]
    stats = {"parent_rows": len(df), "dropped_exact": report.exact, "dropped_near": report.near,
             "threshold": report.threshold}
    child = datasets.store(session, actor=actor, project=project, df=kept, name=f"{parent.name[:100]} (no overlap)",
                           purpose=parent.purpose, operation="drop-overlap", mapping=parent.mapping, stats=stats,
                           parent=parent)
    return child, report


def check_no_overlap(session: Session, *, project: Project, df: pd.DataFrame) -> None:
    """Refuse training rows that equal or nearly equal a holdout row (GovernanceViolation)."""
    report = leakage(session, project=project, df=df)
    if report.leaked:
        ex = report.examples[0]
        raise GovernanceViolation(
            f"{report.sentence()[:-1]}: e.g. id {ex.row_id!r} matches holdout id {ex.holdout_id!r}; training on "
            "them would inflate the holdout score, so drop those rows first (`stillroom data drop-overlap` or the "
            "Coverage and holdout page) and run the teacher on the new version.")


EXPORT_FORMATS = ("csv", "jsonl", "parquet")
GROUP_COLUMN = "query_id"  # a ranking's query: exported so the external team ranks each query's items together


def export_rows(session: Session, *, project: Project) -> pd.DataFrame:
    """What a team predicting elsewhere needs: the holdout's ids and inputs (and query ids), never its
    references or slices (a slice can be the answer itself)."""
    held = holdout_rows(session, project_id=project.id)
    if held is None:
        raise InvalidInput(f"project {project.name!r} has no holdout yet: fix it first (`stillroom data holdout`).",
                           field="holdout")
    columns = ["id", "text"] + ([GROUP_COLUMN] if GROUP_COLUMN in held.columns else [])
    return held[columns].astype(str).reset_index(drop=True)


def export_holdout(session: Session, *, project: Project, fmt: str = "csv") -> bytes:
    """The holdout's ids and inputs as CSV (formula-safe: a cell a spreadsheet would run gets a leading
    quote, which the import of predictions accepts), JSONL or Parquet."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format {fmt!r} is not known: use one of {', '.join(EXPORT_FORMATS)}.", field="format")
    df = export_rows(session, project=project)
    if fmt == "csv":
        return textsafe.csv_bytes(df)
    if fmt == "jsonl":
        return df.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def training_rows(session: Session, *, project: Project) -> pd.DataFrame:
    """Every row the project's teachers ran on, so every row a student may have trained on."""
    ids = sorted({r.dataset_id for r in session.exec(select(TeacherRun).where(TeacherRun.project_id == project.id))})
    frames = [datasets.rows(session, datasets.get_dataset(session, project=project, dataset_id=i))[["id", "text"]]
              for i in ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": [], "text": []})


def extend_holdout(session: Session, *, actor: User, project: Project, dataset_id: int, reason: str,
                   ids: Sequence[str] | None = None) -> HoldoutVersion:
    """A new holdout version: every row of the current one plus rows of ``dataset_id`` (all of them, or
    ``ids``) that are not in it yet. Refused when a new row is an oversampled copy, has a training row's id, or
    equals or nearly equals a training row (the leakage check, re-run); the new version is fingerprinted and
    audited, and evaluations from now on name it."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="extend the holdout")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why the holdout grows (e.g. the data request it answers).", field="reason")
    now = current(session, project_id=project.id)
    if now is None:
        raise InvalidInput(f"project {project.name!r} has no holdout to extend: fix it first.", field="holdout")
    held = load_table(session.get(Artifact, now.artifact_id))
    dataset = datasets.get_dataset(session, project=project, dataset_id=dataset_id)
    new = _new_rows(datasets.rows(session, dataset), held, ids, dataset.id)
    _require_unseen(session, project=project, new=new, source=dataset.id)
    rows = pd.concat([held, new], ignore_index=True)
    digest = fingerprint(rows)
    try:
        art = store_table(session, project=project, actor=actor, df=rows, kind="holdout",
                          meta={"dataset_id": dataset.id, "fingerprint": digest, "version": now.version + 1})
        row = HoldoutVersion(project_id=project.id, version=now.version + 1, dataset_id=dataset.id,
                             artifact_id=art.id, fingerprint=digest, parent_fingerprint=now.fingerprint,
                             n_rows=len(rows), n_added=len(new), reason=reason, created_by=actor.id)
        session.add(row)
        session.flush()
        audit.record(session, actor=actor, action="holdout.extend", entity="holdout_version", entity_id=row.id,
                     project_id=project.id,
                     payload={"version": row.version, "dataset_id": dataset.id, "n_rows": len(rows),
                              "n_added": len(new), "fingerprint": digest, "parent_fingerprint": now.fingerprint,
                              "reason": reason, "sha256": art.sha256})
        session.commit()
    except BaseException:
        session.rollback()  # and core.store.artifacts removes the file this transaction wrote
        raise
    return row


def _new_rows(df: pd.DataFrame, held: pd.DataFrame, ids: Sequence[str] | None, dataset_id: int) -> pd.DataFrame:
    df = df.assign(id=df["id"].astype(str))
    if ids is not None:
        wanted = [str(i) for i in ids]
        unknown = [i for i in wanted if i not in set(df["id"])]
        if unknown:
            raise InvalidInput(f"dataset #{dataset_id} has no rows with the ids {', '.join(map(repr, unknown[:5]))}: "
                               "name rows of that dataset.", field="ids")
        df = df[df["id"].isin(set(wanted))]
    copies = df[copy_origin(df["id"]).notna().to_numpy()]
    if len(copies):
        raise GovernanceViolation(f"{len(copies):,} of the rows are oversampled copies (e.g. id "
                                  f"{copies['id'].iloc[0]!r}): a holdout takes only real, unseen rows.")
    new = df[~df["id"].isin(set(held["id"].astype(str)))]
    if new.empty:
        raise InvalidInput(f"every row of dataset #{dataset_id} you named is already in the holdout: import new "
                           "examples first.", field="dataset")
    missing = [c for c in held.columns if c not in new.columns]
    if missing:
        raise InvalidInput(f"dataset #{dataset_id} has no column {missing[0]!r}, which the holdout has: import "
                           "the new rows with the same mapping.", field="dataset")
    return new[list(held.columns)].reset_index(drop=True)


def _require_unseen(session: Session, *, project: Project, new: pd.DataFrame, source: int) -> None:
    """New holdout rows were never training rows (rows a teacher labelled, or rows of any other prompt set):
    not by id, not by (near) identical text."""
    seen = pd.concat([training_rows(session, project=project), prompt_rows(session, project=project, exclude=source)],
                     ignore_index=True).drop_duplicates("id")
    by_id = new[new["id"].isin(set(seen["id"].astype(str)))]
    if len(by_id):
        raise GovernanceViolation(f"{len(by_id):,} of the new rows are training rows (e.g. id "
                                  f"{by_id['id'].iloc[0]!r}): the holdout takes only rows no student has seen.")
    report = overlap(seen.reset_index(drop=True), new, examples=1)
    if report.leaked:
        ex = report.examples[0]
        raise GovernanceViolation(f"{report.leaked:,} of the new rows equal or nearly equal a training row (e.g. id "
                                  f"{ex.row_id!r} matches training row {ex.holdout_id!r}): they would measure "
                                  "memory, not skill. Collect other examples for the holdout.")


# --------------------------------------------------------------------------- issue 12: the user's own test split

IMPORTED_PURPOSE = "holdout"  # the dataset an imported test split is stored as: never distilled on


@dataclass(frozen=True)
class ImportedHoldout:
    holdout: Holdout
    dataset: Dataset
    leakage: LeakageReport  # training rows that equal or nearly equal a row of the imported split

    def sentence(self) -> str:
        head = (f"Holdout fixed from the imported test split: {self.holdout.n_rows:,} rows (dataset "
                f"#{self.dataset.id}), fingerprint {self.holdout.fingerprint[:16]}.")
        if not self.leakage.leaked:
            return f"{head} {self.leakage.sentence()}"
        return (f"{head} {self.leakage.sentence()[:-1]}: training refuses them, so drop them from the training "
                "data (`stillroom data drop-overlap` or the Coverage and holdout page) before distilling.")


def prompt_rows(session: Session, *, project: Project, exclude: int | None = None) -> pd.DataFrame:
    """Every row of every dataset the project may distil on (the training side of the leakage check), but the
    dataset ``exclude`` (the source of rows being added to the holdout)."""
    frames = [datasets.rows(session, d)[["id", "text"]] for d in datasets.list_datasets(session, project_id=project.id)
              if d.purpose == "prompts" and d.id != exclude]
    return (pd.concat(frames, ignore_index=True).drop_duplicates("id") if frames
            else pd.DataFrame({"id": pd.Series(dtype=str), "text": pd.Series(dtype=str)}))


def import_holdout(session: Session, *, actor: User, project: Project, mapping: dict, data: bytes | None = None,
                   path: str | None = None, filename: str | None = None, name: str | None = None) -> ImportedHoldout:
    """Make the user's own test split the holdout (driver only, once): every row validated as an import is, and
    every row must carry its reference answer; its ids may not be ids of training rows; it is fingerprinted,
    stored as a dataset of its own (purpose "holdout", never distilled on) and checked for leakage against every
    training row. Nothing is stored when a check fails; leaked training rows are reported, and training refuses
    them until they are dropped."""
    from pathlib import Path

    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="import the holdout")
    existing = get_holdout(session, project_id=project.id)
    if existing is not None:
        raise GovernanceViolation(
            f"Project {project.name!r} already has its holdout ({existing.n_rows:,} rows, fingerprint "
            f"{existing.fingerprint[:16]}): it is fixed once; extend it as a new version instead.")
    parsed = importer.parse_mapping(mapping)
    if not parsed.reference:
        raise InvalidInput("a test split needs its answers: map the reference column (the label of each row).",
                           field="reference")
    raw, filename = importer.read_bytes(data=data, path=path, filename=filename)
    source = importer.read_source(raw, filename)
    df = importer.to_schema(source, parsed, filename)
    missing = np.flatnonzero(df["reference"].isna().to_numpy())
    if len(missing):
        raise InvalidInput(f"{source.where(int(missing[0]))}, column {parsed.reference}: {len(missing):,} rows have "
                           "no reference; every row of a holdout is scored against its answer, so fill them in or "
                           "leave those rows out.", field="reference")
    train = prompt_rows(session, project=project)
    shared = sorted(set(df["id"].astype(str)) & set(train["id"].astype(str)))
    if shared:
        raise InvalidInput(f"column {parsed.id}: {len(shared):,} ids of the test split are also ids of training "
                           f"rows (first: {', '.join(map(repr, shared[:3]))}); give the test split its own ids.",
                           field="id")
    report = overlap(df.reset_index(drop=True), train.reset_index(drop=True))
    digest = fingerprint(df)
    stored = StoredMapping.of(parsed, source=filename).stored()
    dataset = datasets.store(session, actor=actor, project=project, df=df,
                             name=(name or f"Test split: {Path(filename).stem}")[:120], purpose=IMPORTED_PURPOSE,
                             operation="import", mapping=stored,
                             stats={"rows": len(df), "source_sha256": hashlib.sha256(raw).hexdigest()})
    try:
        art = store_table(session, project=project, actor=actor, df=df.reset_index(drop=True), kind="holdout",
                          meta={"dataset_id": dataset.id, "fingerprint": digest, "source": "imported"})
        holdout = Holdout(project_id=project.id, dataset_id=dataset.id, artifact_id=art.id, fingerprint=digest,
                          n_rows=len(df), stratify_by=[], seed=0, created_by=actor.id)
        session.add(holdout)
        session.flush()
        audit.record(session, actor=actor, action="holdout.import", entity="holdout", entity_id=holdout.id,
                     project_id=project.id, payload={
                         "dataset_id": dataset.id, "n_rows": len(df), "fingerprint": digest, "sha256": art.sha256,
                         "source": filename, "leaked_exact": report.exact, "leaked_near": report.near})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return ImportedHoldout(holdout, dataset, report)
