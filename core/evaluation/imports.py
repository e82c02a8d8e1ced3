"""Bring your own predictions: a student trained elsewhere, scored on the holdout against the gate like any other.

The file has one row per holdout example: id, student (its output), teacher (the teacher's output), optionally
reference, and optionally numeric per-example score columns (an LLM judge's, say). Kinds:
- label: classification labels, scored like a trained student;
- text: exact match and normalised match (case, Unicode form and whitespace folded);
- json: each output a JSON object; field-level accuracy over the target's fields;
- ranking: also query_id; student and teacher are per-item scores, reference an optional graded relevance;
  NDCG@10 per query (against the reference, else the teacher's scores) and pairwise order agreement.
The target is the reference where the file or the holdout has one, else the teacher's output.
Every problem is refused before anything is stored, naming the row, the column and the fix.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sqlmodel import Session

from core.data import datasets, readers, similarity
from core.data.holdout import get_holdout, holdout_rows
from core.errors import InvalidInput
from core.evaluation import gate_check, report, runs
from core.governance import gate
from core.models import Evaluation, Project, User

KINDS = ("label", "text", "json", "ranking")
NDCG_K = 10
KNOWN = ("id", "student", "teacher", "reference", "query_id")


def import_predictions(session: Session, *, actor: User, project: Project, path: str | Path | None = None,
                       kind: str = "label", data: bytes | None = None, filename: str | None = None) -> Evaluation:
    """Validate the file (a path, or an upload's bytes and name) against the holdout, score it against the
    locked gate, and record the evaluation."""
    if kind not in KINDS:
        raise InvalidInput(f"kind {kind!r} is not known: use one of {', '.join(KINDS)}.", field="kind")
    locked = runs.require_can_evaluate(session, actor=actor, project=project)
    spec = gate.GateSpec(**gate.spec_of(locked))
    raw, name = readers.read_bytes(data=data, path=path, filename=filename)
    source = readers.read_source(raw, name)
    held = holdout_rows(session, project_id=project.id).reset_index(drop=True)
    frame, scores = validate(source, held, kind=kind, name=name)
    slices = datasets.slice_columns(held)
    scored, extra = _score(frame, kind=kind, spec=spec, slices=slices)
    holdout = get_holdout(session, project_id=project.id)
    meta = {"project_id": project.id, "round": runs.current_round(session, project_id=project.id),
            "gate_version": locked.version, "gate_hash": locked.content_hash,
            "training_run_id": None, "source": "imported", "kind": kind, "file": name,
            "holdout_fingerprint": holdout.fingerprint, "n": len(frame)}
    extra["scores"] = {c: float(frame[c].mean()) for c in scores}
    latency = {"student": report.NOT_MEASURED, "teacher": report.NOT_MEASURED}  # trained and served elsewhere
    body, _ = report.assemble(scored, spec=spec, evaluation=meta, latency=latency,
                              cost=runs.cost_figures(session, project_id=project.id, latency=latency), extra=extra)
    return runs.record(session, actor=actor, project=project, gate_version=locked, predictions=frame,
                       report=body, summary=report.summary(body), source="imported")


# --------------------------------------------------------------------------- validation


def _fail(source, i: int, column: str, problem: str, fix: str) -> InvalidInput:
    return InvalidInput(f"{source.where(i)}, column {column}: {problem}; {fix}.", field=column)


def validate(source, held: pd.DataFrame, *, kind: str, name: str) -> tuple[pd.DataFrame, list[str]]:
    """The predictions table (contract schema) joined with the holdout, and the names of the score columns."""
    df = source.frame
    required = ["id", "student", "teacher"] + (["query_id"] if kind == "ranking" else [])
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InvalidInput(f"{name} has no column {missing[0]}: a predictions file needs the columns "
                           f"{', '.join(required)} (and optionally reference and numeric score columns).",
                           field=missing[0])
    scores = [c for c in df.columns if c not in KNOWN]
    for c in scores:
        _numeric(source, c, df[c], allow_missing=True)
    ids = df["id"]
    held_ids = set(held["id"].astype(str))
    for i, value in enumerate(ids):
        if value is None or not str(value).strip():
            raise _fail(source, i, "id", "the cell is empty", "give the holdout id of the example")
        if str(value) not in held_ids:
            raise _fail(source, i, "id", f"{value!r} is not a holdout id", "predict only the project's holdout rows")
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise _fail(source, i, "id", f"{ids.iloc[i]!r} appears twice", "keep one prediction per example")
    absent = sorted(held_ids - set(ids.astype(str)))
    if absent:
        raise InvalidInput(f"{name} has no prediction for {len(absent)} holdout rows (e.g. id {absent[0]!r}): add "
                           "a row for every holdout example so the evaluation covers the whole holdout.", field="id")
    for column in ("student", "teacher") if kind != "ranking" else ():
        for i, value in enumerate(df[column]):
            if value is None or (kind != "text" and not str(value).strip()):
                raise _fail(source, i, column, "the cell is empty", "give the model's output for every example")
    if kind == "json":
        for column in ("student", "teacher", "reference"):
            if column in df.columns:
                for i, value in enumerate(df[column]):
                    if value is not None:
                        _object(source, i, column, value)
    frame = _joined(source, df, held, kind, scores)
    if kind == "json":  # a reference taken from the holdout must be a JSON object too
        for i, value in enumerate(frame["reference"]):
            if value is not None:
                _object(source, i, "reference", value)
    return frame, scores


def _numeric(source, column: str, values: pd.Series, *, allow_missing: bool) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & (values.notna() if allow_missing else True)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(source, i, column, f"{values.iloc[i]!r} is not a number",
                    "give a number, or leave the cell empty for an optional score")
    return out.astype(float)


def _object(source, i: int, column: str, value: str) -> dict:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise _fail(source, i, column, f"the cell is not valid JSON ({exc.msg})", "write one JSON object") from None
    if not isinstance(parsed, dict):
        raise _fail(source, i, column, f"the cell holds a JSON {type(parsed).__name__}", "write one JSON object")
    return parsed


def _joined(source, df: pd.DataFrame, held: pd.DataFrame, kind: str, scores: list[str]) -> pd.DataFrame:
    df = df.assign(id=df["id"].astype(str)).reset_index(drop=True)
    base = held.assign(id=held["id"].astype(str)).set_index("id")
    ref_file = df["reference"] if "reference" in df.columns else pd.Series([None] * len(df))
    ref_held = df["id"].map(base["reference"]) if "reference" in base.columns else pd.Series([None] * len(df))
    reference = ref_file.where(ref_file.notna(), ref_held)
    frame = pd.DataFrame({
        "id": df["id"], "text": df["id"].map(base["text"]).astype(str),
        "reference": reference.astype("object").where(reference.notna(), None),
        "teacher_label": df["teacher"].astype("object"), "teacher_confidence": np.nan,
        "student_label": df["student"].astype("object"), "student_confidence": np.nan, "severe": False,
    })
    for c in datasets.slice_columns(held):
        values = df["id"].map(base[c])
        frame[c] = values.astype("object").where(values.notna(), None)
    if kind == "ranking":
        frame["query_id"] = df["query_id"].astype(str)
        frame["student_score"] = _numeric(source, "student", df["student"], allow_missing=False).to_numpy()
        frame["teacher_score"] = _numeric(source, "teacher", df["teacher"], allow_missing=False).to_numpy()
        if "reference" in df.columns:
            frame["relevance"] = _numeric(source, "reference", df["reference"], allow_missing=True).to_numpy()
    for c in scores:
        frame[c] = pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy()
    return frame


# --------------------------------------------------------------------------- scoring by kind


def _score(frame: pd.DataFrame, *, kind: str, spec, slices: list[str]) -> tuple[report.Scored, dict]:
    if kind == "label":
        frame["severe"] = report.severe_flags(frame, spec.severe_errors.classes)
        return report.score(frame, spec=spec, slices=slices, labels=None, baselines={}), {}
    if kind == "ranking":
        return _ranking(frame, spec=spec, slices=slices)
    target = _targets(frame)
    exact = report.score(target, spec=spec, slices=slices, labels=None, baselines={}, with_f1=False)
    extra: dict = {"target": "reference" if frame["reference"].notna().any() else "teacher"}
    if kind == "text":
        normal = target.copy()
        for c in ("reference", "teacher_label", "student_label"):
            normal[c] = _normalised(normal[c])
        folded = report.score(normal, spec=spec, slices=slices, labels=None, baselines={}, with_f1=False)
        extra["text"] = {"exact_match": exact.overall["student"]["accuracy"],
                         "normalised_match": folded.overall["student"]["accuracy"],
                         "teacher_exact_match": exact.overall["teacher"]["accuracy"],
                         "teacher_normalised_match": folded.overall["teacher"]["accuracy"]}
        frame["severe"] = report.severe_flags(target, spec.severe_errors.classes)
        return exact, extra
    return _json(frame, target, exact, spec=spec, slices=slices, extra=extra)


def _targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Without any reference, the teacher's output is the target (the teacher then scores 1 by definition)."""
    out = frame.copy()
    if not out["reference"].notna().any():
        out["reference"] = out["teacher_label"]
    return out


def _normalised(values: pd.Series) -> pd.Series:
    mask = values.notna()
    out = values.astype("object").copy()
    if mask.any():
        out[mask] = similarity.normalise(values[mask].astype(str)).to_numpy()
    return out


def _field_hits(outputs: pd.Series, targets: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many of the target object's fields the output matches, and how many fields the target has."""
    hits, total = np.zeros(len(outputs)), np.zeros(len(outputs))
    for i, (out, tgt) in enumerate(zip(outputs, targets, strict=True)):
        if tgt is None:
            continue
        t = json.loads(tgt)
        o = json.loads(out) if out is not None else {}
        total[i] = len(t)
        hits[i] = sum(1 for k, v in t.items() if k in o and o[k] == v)
    return hits, total


def _json(frame, target, exact: report.Scored, *, spec, slices, extra) -> tuple[report.Scored, dict]:
    hits, total = _field_hits(target["student_label"], target["reference"])
    t_hits, _ = _field_hits(target["teacher_label"], target["reference"])
    frame["field_hits"], frame["fields"] = hits, total
    student_acc = hits.sum() / total.sum() if total.sum() else None
    teacher_acc = t_hits.sum() / total.sum() if total.sum() else None
    extra["json"] = {"field_accuracy": student_acc, "teacher_field_accuracy": teacher_acc,
                     "exact_match": exact.overall["student"]["accuracy"], "fields": int(total.sum())}
    exact.overall["student"]["field_accuracy"] = student_acc
    exact.overall["teacher"]["field_accuracy"] = teacher_acc
    numbers = exact.numbers
    student, teacher = dict(numbers.student), dict(numbers.teacher)
    student[report.FIELD], teacher[report.FIELD] = student_acc, teacher_acc
    n = {**numbers.n, report.FIELD: int((total > 0).sum())}
    sliced = numbers.slices
    if str(spec.metric) == report.FIELD:
        sliced = _slice_means(frame.assign(_hit=hits, _tot=total), slices, "_hit", "_tot")
    frame["severe"] = report.severe_flags(target, spec.severe_errors.classes)
    numbers = replace(numbers, student=student, teacher=teacher, n=n, slices=sliced)
    return report.Scored(exact.overall, exact.slices, exact.severe, numbers), extra


def _slice_means(frame: pd.DataFrame, slices: list[str], num: str, den: str) -> dict:
    out = {}
    for c in slices:
        sums = frame.groupby(frame[c].fillna("(missing)"), sort=True)[[num, den]].sum()
        counts = frame[frame[den] > 0].groupby(frame[c].fillna("(missing)")).size()
        for value, row in sums.iterrows():
            out[(c, str(value))] = gate_check.SliceNumbers(
                n=int(counts.get(value, 0)), value=float(row[num] / row[den]) if row[den] else None)
    return out


def ndcg(scores: np.ndarray, relevance: np.ndarray, k: int = NDCG_K) -> float:
    """NDCG@k of one query's items ranked by ``scores`` (scikit-learn's definition, ties broken by order)."""
    if len(scores) < 2:
        return 1.0
    from sklearn.metrics import ndcg_score

    if not np.any(relevance > 0):
        return 1.0
    return float(ndcg_score(relevance[None, :], scores[None, :], k=k))


def pairwise_agreement(student: np.ndarray, teacher: np.ndarray) -> tuple[int, int]:
    """(pairs ordered as the teacher orders them, pairs the teacher orders) within one query."""
    i, j = np.triu_indices(len(student), k=1)
    t = np.sign(teacher[i] - teacher[j])
    s = np.sign(student[i] - student[j])
    ordered = t != 0
    return int((s[ordered] == t[ordered]).sum()), int(ordered.sum())


def _ranking(frame: pd.DataFrame, *, spec, slices: list[str]) -> tuple[report.Scored, dict]:
    has_rel = "relevance" in frame.columns and frame["relevance"].notna().any()
    rows = []
    for qid, q in frame.groupby("query_id", sort=True):
        rel = (q["relevance"].fillna(0.0) if has_rel else q["teacher_score"]).to_numpy(dtype=float)
        rel = rel - min(rel.min(), 0.0)  # NDCG needs non-negative gains
        agree, pairs = pairwise_agreement(q["student_score"].to_numpy(), q["teacher_score"].to_numpy())
        rows.append({"query_id": qid, "ndcg": ndcg(q["student_score"].to_numpy(dtype=float), rel),
                     "teacher_ndcg": ndcg(q["teacher_score"].to_numpy(dtype=float), rel), "agree": agree,
                     "pairs": pairs, **{c: q[c].iloc[0] for c in slices}})
    per_query = pd.DataFrame(rows)
    pair_share = per_query["agree"].sum() / per_query["pairs"].sum() if per_query["pairs"].sum() else None
    student = {report.A: float(per_query["ndcg"].mean()), report.AGREE: pair_share}
    teacher = {report.A: float(per_query["teacher_ndcg"].mean()), report.AGREE: 1.0}
    n = {report.A: len(per_query), report.AGREE: int((per_query["pairs"] > 0).sum())}
    metric = str(spec.metric)
    sliced = (_slice_means(per_query.assign(one=1.0), slices, "ndcg", "one") if metric == report.A else
              _slice_means(per_query, slices, "agree", "pairs"))
    numbers = gate_check.GateNumbers(student=student, teacher=teacher, baseline={}, n=n, slices=sliced,
                                     severe_rate=0.0, n_severe=0, n_rows=len(frame))
    overall = {"student": {"ndcg_at_k": student[report.A], "pairwise_agreement": pair_share, "k": NDCG_K},
               "teacher": {"ndcg_at_k": teacher[report.A]}}
    empty = pd.DataFrame(columns=["column", "value", "n", "n_labelled", "accuracy", "ci_low", "ci_high",
                                  "agreement", "macro_f1", "teacher_accuracy", "teacher_ci_low",
                                  "teacher_ci_high", "gap"])
    extra = {"ranking": {"ndcg_at_k": student[report.A], "pairwise_agreement": pair_share, "k": NDCG_K,
                         "n_queries": len(per_query), "relevance": "reference" if has_rel else "teacher scores",
                         "gate_metrics": {"accuracy": "NDCG@k", "teacher-agreement": "pairwise order agreement"}}}
    return report.Scored(overall, empty, {"rate": 0.0, "n_severe": 0, "n": len(frame)}, numbers), extra
