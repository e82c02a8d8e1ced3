"""Bring your own predictions: a student trained elsewhere, scored on the holdout against the gate like any other.

The file has one row per holdout example (`stillroom data holdout-export` writes the rows to predict): id and
student (its output), optionally teacher (never used: compared with the trusted teacher's answers and the
mismatches counted), confidence (the student's probability), text (checked against the holdout's), reference
(never used: compared with the holdout's and the mismatches counted) and per-example score columns named
judge_score or score_* (a judge's). Other columns are ignored with a note. Kinds:
- label: classification labels, scored like a trained student;
- text: exact match and normalised match (case, Unicode form and whitespace folded);
- json: each output a JSON object; accuracy per field (under the gate's field rules) and over all fields;
- ranking: also query_id; student and teacher are per-item scores; NDCG@k (k from the gate) against the holdout's
  graded relevance (else the trusted teacher's scores) and pairwise order.
Answers are always judged against the locked holdout's references, else the answers of a teacher run fixed before
the file arrived (core.evaluation.teacher_bar), which alone sets any teacher figure. A holdout row the
file lacks is a wrong answer (counted and shown); an id outside the holdout, a repeated id or a text that is not
the holdout's is refused before anything is stored, naming the rows.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sqlmodel import Session

from core.data import datasets, readers, similarity
from core.data.holdout import current as current_holdout
from core.data.holdout import holdout_rows
from core.domain import textsafe
from core.domain.errors import InvalidInput
from core.domain.gate_spec import field_key
from core.domain.report import EvaluationReport, FileTeacherCheck
from core.evaluation import gate_check, report, runs, teacher_bar
from core.evaluation import latency as latency_mod
from core.gate import gate
from core.store.models import Evaluation, Project, User, utcnow
from core.teacher.local import model_labels

KINDS = ("label", "text", "json", "ranking")
NDCG_K = 10
GROUP = "query_id"
KNOWN = ("id", "student", "teacher", "reference", GROUP, "text", "confidence")
SHOWN = 5  # ids named in a refusal or a note


def import_predictions(session: Session, *, actor: User, project: Project, path: str | Path | None = None,
                       kind: str = "label", data: bytes | None = None, filename: str | None = None,
                       latency_model_dir: str | Path | None = None, latency_endpoint: str | None = None,
                       declared_latency: dict | None = None) -> Evaluation:
    """Validate the file (a path, or an upload's bytes and name) against the holdout, score it against the
    locked gate, and record the evaluation. The student's latency is measured here from a local model directory
    or its HTTP endpoint, or declared with evidence (``core.evaluation.latency.Declared``), or left unmeasured."""
    if kind not in KINDS:
        raise InvalidInput(f"kind {kind!r} is not known: use one of {', '.join(KINDS)}.", field="kind")
    if sum(x is not None for x in (latency_model_dir, latency_endpoint, declared_latency)) > 1:
        raise InvalidInput("give the student's latency one way: a model directory, an endpoint, or declared "
                           "figures.", field="latency")
    started = utcnow()  # only teacher answers recorded before this moment may set the bar
    locked = runs.require_can_evaluate(session, actor=actor, project=project)
    spec = gate.spec_of(locked)
    raw, name = readers.read_bytes(data=data, path=path, filename=filename)
    source = readers.read_source(raw, name)
    held = holdout_rows(session, project_id=project.id).reset_index(drop=True)
    checked = validate(source, held, kind=kind, name=name)
    bar = teacher_bar.for_import(session, project=project, author=actor, started=started, held=held)
    frame, scores = _with_teacher(checked.frame, bar.answers, kind), checked.scores
    slices = datasets.slice_columns(held)
    scored, extra = _score(frame, kind=kind, spec=spec, slices=slices, teacher=bar.source)
    extra.update(checked.notes())
    extra["file_teacher"] = _file_teacher_check(checked.file_teacher, bar, kind)
    holdout = current_holdout(session, project_id=project.id)
    meta = {"project_id": project.id, "round": runs.current_round(session, project_id=project.id),
            "gate_version": locked.version, "gate_hash": locked.content_hash,
            "training_run_id": None, "source": "imported", "kind": kind, "file": name,
            "holdout_fingerprint": holdout.fingerprint, "holdout_version": holdout.version, "n": len(frame)}
    extra["scores"] = {c: None if frame[c].isna().all() else float(frame[c].mean()) for c in scores}
    if latency_model_dir is not None and kind == "label":
        _require_same_labels(latency_model_dir, frame["student_label"])
    latency = {"student": _student_latency(held, actor, latency_model_dir, latency_endpoint, declared_latency),
               "teacher": report.NOT_MEASURED}  # the teacher was not timed here
    body, _ = report.assemble(scored, spec=spec, evaluation=meta, latency=latency, teacher=bar,
                              cost=runs.cost_figures(session, project_id=project.id, latency=latency), extra=extra)
    return runs.record(session, actor=actor, project=project, gate_version=locked, predictions=frame,
                       report=body, summary=report.summary(body), source="imported")


def _require_same_labels(model_dir, answers: pd.Series) -> None:
    """The model timed must be able to give the answers scored: a classifier without one of them is another model."""
    foreign = sorted(set(answers.dropna().astype(str)) - set(model_labels(model_dir)))
    if foreign:
        raise InvalidInput(f"the model in {model_dir} cannot answer {', '.join(map(repr, foreign[:SHOWN]))}, which the "
                           "file's student gives: time the student that made these predictions.",
                           field="latency_model_dir")


def _student_latency(held: pd.DataFrame, actor: User, model_dir, endpoint, declared: dict | None) -> dict:
    texts = held["text"].astype(str).tolist()
    if model_dir is not None:
        return latency_mod.measure_local(model_dir, texts)
    if endpoint is not None:
        return latency_mod.measure_endpoint(endpoint, texts)
    if declared is not None:
        return latency_mod.declared(declared, recorded_by=actor.username)
    return {**report.NOT_MEASURED, "source": "none"}


def notes(report: EvaluationReport) -> list[str]:
    """What a person must know about an evaluation beyond its criteria, in sentences (CLI and pages). The parts
    only imports have (coverage, confidence, file reference, ranking, json, text, scores) are read as stored."""
    out = [f"Student latency: {report.latency.student_figures.describe()}."]
    cov = report.part("coverage") or {}
    if cov.get("missing"):
        out.append(f"{cov['missing']:,} of {cov['holdout_rows']:,} holdout rows had no prediction and count as wrong "
                   f"answers (e.g. {', '.join(cov.get('missing_ids', []))}).")
    conf = report.part("confidence") or {}
    if said := runs.confidence_note(missing=conf.get("missing", 0), answered=conf.get("answered", 0)):
        out.append(said)
    ref = report.part("file_reference") or {}
    if ref.get("compared"):
        out.append(f"The file's reference column was not used: {ref['mismatches']:,} of {ref['compared']:,} of its "
                   "references differ from the holdout's locked references.")
    out += _teacher_notes(report)
    if ignored := report.part("ignored_columns"):
        out.append(f"Ignored columns (not read): {', '.join(ignored)}.")
    if target := report.part("target"):
        out.append(f"Judged against: {target}.")
    r = report.part("ranking")
    if r:
        out.append(f"Ranking: NDCG@{r['k']} {_fmt(r.get('ndcg'))} (teacher {_fmt(r.get('teacher_ndcg'))}), "
                   f"pairwise order {_fmt(r.get('pairwise_order'))} over {r['n_queries']:,} queries; "
                   f"{r.get('queries_top_k_differs', 0):,} queries' top {r['k']} differ from the teacher's; "
                   f"relevance from the {r['relevance']}.")
    for name, f in ((report.part("json") or {}).get("per_field") or {}).items():
        floor = f" (floor {_fmt(f['floor'])})" if f.get("floor") is not None else ""
        rules = f" [{', '.join(f['rules'])}]" if f.get("rules") else ""
        out.append(f"Field {name}: accuracy {_fmt(f['accuracy'])} on {f['n']:,} rows{floor}{rules}; teacher "
                   f"{_fmt(f.get('teacher_accuracy'))}.")
    if t := report.part("text"):
        out.append(f"Text: exact match {_fmt(t['exact_match'])}, normalised match {_fmt(t['normalised_match'])}.")
    for name, value in (report.part("scores") or {}).items():
        out.append(f"Mean {name}: {_fmt(value)}.")
    return out


def _teacher_notes(report: EvaluationReport) -> list[str]:
    """Which teacher answers set the teacher figures, and what became of the file's own teacher column."""
    bar = report.teacher_bar
    if bar is None:  # evaluated before the teacher's bar was recorded
        return []
    out = [f"Teacher figures: {bar.source}." if bar.source else
           "Teacher figures: none; no teacher answers were fixed before this file arrived ("
           + ("; ".join(bar.refused) or "the project has no teacher run") + ")."]
    given = report.file_teacher or FileTeacherCheck()
    if given.compared:
        out.append(f"The file's teacher column was not used: {given.mismatches:,} of {given.compared:,} of its "
                   f"answers differ from teacher run #{bar.run}'s.")
    elif given.given:
        out.append(f"The file's teacher column was not used ({given.given:,} answers): with no trusted teacher "
                   "answers, it could not be compared.")
    return out


def overall_metrics(report: EvaluationReport) -> tuple[str, ...]:
    """The overall figures worth charting for an evaluation of this kind, as fields of ``OverallMetrics``."""
    kind = report.evaluation.kind
    return {"ranking": ("ndcg_at_k", "pairwise_order"), "json": ("field_accuracy", "accuracy"),
            "text": ("accuracy",)}.get(kind, ("accuracy", "macro_f1", "agreement"))


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


# --------------------------------------------------------------------------- validation


def _fail(source, i: int, column: str, problem: str, fix: str) -> InvalidInput:
    return InvalidInput(f"{source.where(i)}, column {column}: {problem}; {fix}.", field=column)


def _first(values, k: int = SHOWN) -> str:
    values = list(values)
    more = f" and {len(values) - k:,} more" if len(values) > k else ""
    return ", ".join(repr(str(v)) for v in values[:k]) + more


@dataclass(frozen=True)
class Checked:
    """The predictions joined with the locked holdout, and what the check found on the way."""

    frame: pd.DataFrame  # one row per holdout row, in the holdout's order
    scores: list[str]  # optional per-example score columns (a judge's)
    missing: list[str]  # holdout ids the file has no row for: scored as wrong answers
    ignored: list[str]  # columns Stillroom does not read
    reference_rows: int  # rows whose file reference could be compared with the holdout's
    reference_mismatches: int  # of those, how many differ: the file's reference is never used
    file_teacher: pd.Series  # the file's teacher column per holdout row: never used, only compared

    def notes(self) -> dict:
        return {"coverage": {"holdout_rows": len(self.frame), "missing": len(self.missing),
                             "missing_ids": self.missing[:SHOWN]},
                "ignored_columns": self.ignored,
                "file_reference": {"compared": self.reference_rows, "mismatches": self.reference_mismatches,
                                   "used": False},
                "confidence": {"missing": runs.without_confidence(self.frame),
                               "answered": int(self.frame["answered"].sum())}}


def _is_score(column: str) -> bool:
    return column == "judge_score" or column.startswith("score_")


def validate(source, held: pd.DataFrame, *, kind: str, name: str) -> Checked:
    """Check the file against the locked holdout: every id a holdout id, each once, its text the holdout's; a
    holdout id without a row is a missing answer. References always come from the holdout."""
    df = source.frame
    required = ["id", "student"] + (["query_id"] if kind == "ranking" else [])
    missing_cols = [c for c in required if c not in df.columns]
    if missing_cols:
        raise InvalidInput(f"{name} has no column {missing_cols[0]}: a {kind} predictions file needs the columns "
                           f"{', '.join(required)} (optionally teacher, confidence, text, reference, judge_score "
                           "or score_* columns); see `stillroom eval import --help`.", field=missing_cols[0])
    scores = [c for c in df.columns if _is_score(c)]
    ignored = [c for c in df.columns if c not in KNOWN and c not in scores]
    for c in scores:
        _numeric(source, c, df[c], allow_missing=True)
    held_ids = set(held["id"].astype(str))
    df = df.assign(id=readers.read_ids(df["id"], held_ids))
    _check_ids(source, df["id"], held_ids, name)
    base = held.assign(id=held["id"].astype(str)).set_index("id")
    if "text" in df.columns:
        _check_text(source, df, base, name)
    if kind == "ranking" and GROUP in base.columns:
        _check_queries(source, df, base, name)
    if "confidence" in df.columns:
        conf = _numeric(source, "confidence", df["confidence"], allow_missing=True)
        bad = np.flatnonzero(((conf < 0) | (conf > 1)).to_numpy())
        if len(bad):
            raise _fail(source, int(bad[0]), "confidence", f"{df['confidence'].iloc[bad[0]]!r} is outside 0 to 1",
                        "give the student's probability of its answer, between 0 and 1")
    if kind == "json":
        for column in ("student", "teacher"):
            if column in df.columns:
                for i, value in enumerate(df[column]):
                    if value is not None and str(value).strip():
                        _object(source, i, column, value)
    if kind == "ranking":
        for column in ("student", "teacher"):
            if column in df.columns:
                _numeric(source, column, df[column], allow_missing=True)
    frame, file_teacher = _joined(source, df, held, kind, scores)
    compared, mismatches = _reference_check(df, base, kind)
    missing = sorted(set(held["id"].astype(str)) - set(df["id"].astype(str)))
    return Checked(frame, scores, missing, ignored, compared, mismatches, file_teacher)


def _check_ids(source, ids: pd.Series, held_ids: set[str], name: str) -> None:
    for i, value in enumerate(ids):
        if value is None or not str(value).strip():
            raise _fail(source, i, "id", "the cell is empty", "give the holdout id of the example")
    as_str = ids.astype(str)
    unknown = as_str[~as_str.isin(held_ids)]
    if len(unknown):
        i = int(np.flatnonzero(~as_str.isin(held_ids).to_numpy())[0])
        raise InvalidInput(f"{name} has {len(unknown):,} ids that are not in the project's holdout "
                           f"({_first(unknown)}; the first at {source.where(i)}): predict exactly the holdout's rows "
                           "(`stillroom data holdout-export` writes them).", field="id")
    dup = as_str[as_str.duplicated()]
    if len(dup):
        i = int(np.flatnonzero(as_str.duplicated().to_numpy())[0])
        raise InvalidInput(f"{name} predicts {dup.nunique():,} holdout ids more than once ({_first(dup.unique())}; "
                           f"the first repeat at {source.where(i)}): keep one prediction per example.", field="id")


def _check_text(source, df: pd.DataFrame, base: pd.DataFrame, name: str) -> None:
    """Predictions made on other rows under holdout ids are caught by their text."""
    given = df["text"].astype("object").where(df["text"].notna(), "")
    truth = df["id"].astype(str).map(base["text"]).astype(str)
    # An export to CSV quotes a cell a spreadsheet would run: that quote is not part of the text.
    unquoted = given.astype(str).map(textsafe.unquote_formula)
    norm = similarity.normalise
    same = (norm(given.astype(str)) == norm(truth)) | (norm(unquoted) == norm(truth))
    bad = np.flatnonzero(~same.to_numpy())
    if len(bad):
        ids = df["id"].astype(str).iloc[bad]
        raise InvalidInput(f"{name}: the text of {len(bad):,} rows differs from the holdout's text under the same id "
                           f"({_first(ids)}; the first at {source.where(int(bad[0]))}): these predictions were made "
                           "on other inputs. Predict the exported holdout rows as they are.", field="text")


def _check_queries(source, df: pd.DataFrame, base: pd.DataFrame, name: str) -> None:
    truth = df["id"].astype(str).map(base[GROUP]).astype(str)
    bad = np.flatnonzero((df[GROUP].astype(str) != truth).to_numpy())
    if len(bad):
        raise InvalidInput(f"{name}: {len(bad):,} rows name another query than the holdout does "
                           f"({_first(df['id'].astype(str).iloc[bad])}; the first at {source.where(int(bad[0]))}): "
                           "use the holdout's query_id for every item.", field=GROUP)


def _reference_check(df: pd.DataFrame, base: pd.DataFrame, kind: str) -> tuple[int, int]:
    """How many file references could be compared with the holdout's, and how many differ (never used)."""
    if "reference" not in df.columns or "reference" not in base.columns:
        return 0, 0
    given = df["reference"]
    truth = df["id"].astype(str).map(base["reference"])
    both = (given.notna() & truth.notna()).to_numpy()
    if not both.any():
        return 0, 0
    return int(both.sum()), int(both.sum() - np.sum(_same(given[both], truth[both], kind)))


def _same(given: pd.Series, truth: pd.Series, kind: str) -> np.ndarray:
    """Which of a file's answers equal the trusted ones, as the kind compares them."""
    a, b = given.astype(str), truth.astype(str)
    if kind == "json":
        return np.array([_loads(x) == _loads(y) for x, y in zip(a, b, strict=True)], dtype=bool)
    if kind == "ranking":
        return np.isclose(pd.to_numeric(a, errors="coerce").to_numpy(dtype=float),
                          pd.to_numeric(b, errors="coerce").to_numpy(dtype=float))
    return (similarity.normalise(a) == similarity.normalise(b)).to_numpy()


def _file_teacher_check(given: pd.Series, bar: teacher_bar.TeacherBar, kind: str) -> FileTeacherCheck:
    """The file's teacher column against the trusted teacher's answers: counted, never used."""
    present = given.notna().to_numpy()
    both = present & bar.answers.notna().to_numpy() if bar.source else np.zeros(len(given), dtype=bool)
    mismatches = int(both.sum() - np.sum(_same(given[both], bar.answers[both], kind))) if both.any() else 0
    return FileTeacherCheck(given=int(present.sum()), compared=int(both.sum()), mismatches=mismatches, used=False)


def _loads(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _numeric(source, column: str, values: pd.Series, *, allow_missing: bool) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & (_blank_to_none(values).notna() if allow_missing else True)  # an empty cell is missing
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


def _blank_to_none(values: pd.Series) -> pd.Series:
    values = values.astype("object")
    return values.where(values.notna() & (values.astype(str).str.strip() != ""), None)


def _joined(source, df: pd.DataFrame, held: pd.DataFrame, kind: str,
            scores: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """One row per holdout row in the holdout's order (a holdout row the file lacks has no answers), and the
    file's teacher column in that order, kept apart: the teacher's answers come from a trusted run."""
    held = held.assign(id=held["id"].astype(str)).reset_index(drop=True)
    file = df.assign(id=df["id"].astype(str)).set_index("id")
    ids = held["id"]

    def col(name: str) -> pd.Series:
        if name not in file.columns:
            return pd.Series([None] * len(held), dtype="object")
        return _blank_to_none(ids.map(file[name]))

    reference = held["reference"] if "reference" in held.columns else pd.Series([None] * len(held))
    conf = pd.to_numeric(col("confidence"), errors="coerce").astype(float)
    frame = pd.DataFrame({
        "id": ids, "text": held["text"].astype(str),
        "reference": reference.astype("object").where(reference.notna(), None),
        "teacher_label": None, "teacher_confidence": np.nan,
        "student_label": col("student"), "student_confidence": conf.to_numpy(), "severe": False,
        "answered": ids.isin(file.index).to_numpy(),
    })
    for c in datasets.slice_columns(held):
        frame[c] = held[c].astype("object").where(held[c].notna(), None)
    if kind == "ranking":
        if GROUP not in frame.columns:
            frame[GROUP] = col(GROUP).astype(str)
        frame["student_score"] = pd.to_numeric(col("student"), errors="coerce").astype(float).to_numpy()
        if "reference" in held.columns:
            frame["relevance"] = pd.to_numeric(reference, errors="coerce").astype(float).to_numpy()
    if kind == "json":  # a holdout reference that is not a JSON object cannot be a target
        for i, value in enumerate(frame["reference"]):
            if value is not None and not isinstance(_loads(str(value)), dict):
                raise InvalidInput(f"holdout row {frame['id'].iloc[i]!r} has the reference {str(value)[:40]!r}, not "
                                   "a JSON object: evaluate JSON outputs only on a holdout whose references are "
                                   "JSON objects.", field="reference")
    for c in scores:
        frame[c] = pd.to_numeric(col(c), errors="coerce").astype(float).to_numpy()
    return frame, col("teacher").reset_index(drop=True)


def _with_teacher(frame: pd.DataFrame, answers: pd.Series, kind: str) -> pd.DataFrame:
    """The trusted teacher's answers (None where there are none) in the teacher's columns."""
    out = frame.copy()
    out["teacher_label"] = _blank_to_none(answers.reset_index(drop=True)).to_numpy()
    if kind == "ranking":
        out["teacher_score"] = pd.to_numeric(out["teacher_label"], errors="coerce").astype(float).to_numpy()
    return out


# --------------------------------------------------------------------------- scoring by kind


def _score(frame: pd.DataFrame, *, kind: str, spec, slices: list[str],
           teacher: str | None) -> tuple[report.Scored, dict]:
    if kind == "label":
        frame["severe"] = report.severe_flags(frame, spec.severe_errors.classes)
        return report.score(frame, spec=spec, slices=slices, labels=None, baselines={}), {}
    if kind == "ranking":
        return _ranking(frame, spec=spec, slices=slices, teacher=teacher)
    target = _targets(frame)
    exact = report.score(target, spec=spec, slices=slices, labels=None, baselines={}, with_f1=False)
    extra: dict = {"target": "holdout reference" if frame["reference"].notna().any()
                   else f"the answers of {teacher} (the holdout has no reference)" if teacher
                   else "nothing: the holdout has no reference and no teacher answers were fixed before the file"}
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
        frame["target"] = target["reference"].to_numpy()
        frame["diff"] = [word_diff(t, s) for t, s in zip(target["reference"], frame["student_label"], strict=True)]
        return exact, extra
    return _json(frame, target, exact, spec=spec, slices=slices, extra=extra)


def word_diff(target: str | None, output: str | None) -> str:
    """The student's text against the target, word by word: [-removed-] and {+added+}, the rest as it is."""
    if target is None or output is None:
        return "" if target == output else f"[-{target or ''}-]{{+{output or ''}+}}"
    a, b = str(target).split(), str(output).split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(" ".join(a[i1:i2]))
            continue
        if i2 > i1:
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


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


def field_table(outputs: pd.Series, targets: pd.Series, rules: dict[str, list[str]]) -> pd.DataFrame:
    """One row per (example, field of its target): whether the output's value matches, under the field's rules."""
    rows = []
    for i, (out, tgt) in enumerate(zip(outputs, targets, strict=True)):
        if tgt is None:
            continue
        t, o = json.loads(tgt), (_loads(out) if out is not None else {})
        o = o if isinstance(o, dict) else {}
        for name, want in t.items():
            key = field_key(list(rules.get(name, [])))
            rows.append({"row": i, "field": name, "hit": name in o and key(o[name]) == key(want)})
    return pd.DataFrame(rows, columns=["row", "field", "hit"])


def _json(frame, target, exact: report.Scored, *, spec, slices, extra) -> tuple[report.Scored, dict]:
    rules = dict(spec.field_rules)
    student = field_table(target["student_label"], target["reference"], rules)
    teacher = field_table(target["teacher_label"], target["reference"], rules)
    hits = student.groupby("row")["hit"].sum().reindex(range(len(frame)), fill_value=0).to_numpy(dtype=float)
    total = student.groupby("row").size().reindex(range(len(frame)), fill_value=0).to_numpy(dtype=float)
    frame["field_hits"], frame["fields"] = hits, total
    student_acc = float(student["hit"].mean()) if len(student) else None
    teacher_acc = float(teacher["hit"].mean()) if len(teacher) else None
    floors = {f.field: f.floor for f in spec.field_floors}
    per_field = {}
    for name, g in student.groupby("field", sort=True):
        t = teacher[teacher["field"] == name]
        per_field[str(name)] = {"n": len(g), "accuracy": float(g["hit"].mean()),
                                "teacher_accuracy": float(t["hit"].mean()) if len(t) else None,
                                "floor": floors.get(str(name)), "rules": list(rules.get(str(name), []))}
    extra["json"] = {"field_accuracy": student_acc, "teacher_field_accuracy": teacher_acc,
                     "exact_match": exact.overall["student"]["accuracy"], "n_fields": len(student),
                     "per_field": per_field}
    exact.overall["student"]["field_accuracy"] = student_acc
    exact.overall["teacher"]["field_accuracy"] = teacher_acc
    numbers = exact.numbers
    student_n, teacher_n = dict(numbers.student), dict(numbers.teacher)
    student_n[report.FIELD], teacher_n[report.FIELD] = student_acc, teacher_acc
    n = {**numbers.n, report.FIELD: int((total > 0).sum())}
    sliced = numbers.slices
    if str(spec.metric) == report.FIELD:
        sliced = _slice_means(frame.assign(_hit=hits, _tot=total), slices, "_hit", "_tot")
    fields = {name: gate_check.SliceNumbers(n=v["n"], value=v["accuracy"], rows=v["n"])
              for name, v in per_field.items()}
    frame["severe"] = report.severe_flags(target, spec.severe_errors.classes)
    numbers = replace(numbers, student=student_n, teacher=teacher_n, n=n, slices=sliced, fields=fields)
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
    """NDCG@k of one query's items ranked by ``scores``, as scikit-learn's ``ndcg_score`` defines it: tied scores
    share their gains (ignore_ties=False), and a query with no relevant item scores 0."""
    relevance = np.asarray(relevance, dtype=float)
    if not np.any(relevance > 0):
        return 0.0
    if len(scores) < 2:  # scikit-learn refuses one document; its one item is relevant, so it is ranked ideally
        return 1.0
    from sklearn.metrics import ndcg_score

    return float(ndcg_score(relevance[None, :], np.asarray(scores, dtype=float)[None, :], k=k))


def pairwise_agreement(student: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(pairs the student orders as ``truth`` does, pairs ``truth`` orders) within one query; a tie in the
    student's scores where ``truth`` orders the pair counts as a disagreement."""
    i, j = np.triu_indices(len(student), k=1)
    t = np.sign(truth[i] - truth[j])
    s = np.sign(student[i] - student[j])
    ordered = t != 0
    return int((s[ordered] == t[ordered]).sum()), int(ordered.sum())


def _ranked(scores: pd.Series) -> np.ndarray:
    """Scores with a missing one ranked below every given one (a missing answer is a wrong answer)."""
    values = scores.to_numpy(dtype=float)
    if np.isnan(values).all():
        return np.zeros(len(values))
    return np.where(np.isnan(values), np.nanmin(values) - 1.0, values)


def per_query(frame: pd.DataFrame, *, k: int, slices: list[str]) -> pd.DataFrame:
    """NDCG@k and ordered pairs per query, for the student and the teacher, against the reference relevance
    (else the teacher's scores)."""
    has_rel = "relevance" in frame.columns and frame["relevance"].notna().any()
    rows = []
    for qid, q in frame.groupby(GROUP, sort=True):
        truth = (q["relevance"].fillna(0.0) if has_rel else q["teacher_score"].fillna(0.0)).to_numpy(dtype=float)
        gains = truth - min(truth.min(), 0.0)  # NDCG needs non-negative gains
        student, teacher = _ranked(q["student_score"]), _ranked(q["teacher_score"])
        agree, pairs = pairwise_agreement(student, truth)
        t_agree, _ = pairwise_agreement(teacher, truth)
        rows.append({"query_id": qid, "ndcg": ndcg(student, gains, k), "teacher_ndcg": ndcg(teacher, gains, k),
                     "agree": agree, "teacher_agree": t_agree, "pairs": pairs,
                     "top_k_differs": _top(student, k) != _top(teacher, k), "items": len(q),
                     **{c: q[c].iloc[0] for c in slices}})
    return pd.DataFrame(rows)


def _top(scores: np.ndarray, k: int) -> frozenset[int]:
    return frozenset(np.argsort(-scores, kind="stable")[:k].tolist())


def _ranking(frame: pd.DataFrame, *, spec, slices: list[str], teacher: str | None) -> tuple[report.Scored, dict]:
    k = spec.ranking_k
    slices = [c for c in slices if c != GROUP]
    q = per_query(frame, k=k, slices=slices)
    has_rel = "relevance" in frame.columns and frame["relevance"].notna().any()
    # Without graded relevance and without trusted teacher scores there is nothing to rank against.
    judged = has_rel or bool(frame["teacher_score"].notna().any())
    pairs = q["pairs"].sum()
    pair_share = float(q["agree"].sum() / pairs) if pairs else None
    teacher_pairs = float(q["teacher_agree"].sum() / pairs) if pairs else None
    ndcg_of = {m: float(q[m].mean()) if judged else None for m in ("ndcg", "teacher_ndcg")}
    student = {report.NDCG: ndcg_of["ndcg"], report.PAIR: pair_share}
    teacher_figures = {report.NDCG: ndcg_of["teacher_ndcg"], report.PAIR: teacher_pairs}
    n = {report.NDCG: len(q), report.PAIR: int((q["pairs"] > 0).sum())}
    metric = str(spec.metric)
    sliced = (_slice_means(q.assign(one=1.0), slices, "ndcg", "one") if metric != report.PAIR else
              _slice_means(q, slices, "agree", "pairs"))
    numbers = gate_check.GateNumbers(student=student, teacher=teacher_figures, baseline={}, n=n, slices=sliced,
                                     severe_rate=0.0, n_severe=0, n_rows=len(frame))
    frame["top_k_differs"] = frame[GROUP].map(q.set_index("query_id")["top_k_differs"]).fillna(False).to_numpy()
    overall = {"student": {"ndcg_at_k": student[report.NDCG], "pairwise_order": pair_share, "k": k,
                           "n_unreadable": int(frame["student_score"].isna().sum())},
               "teacher": {"ndcg_at_k": teacher_figures[report.NDCG], "pairwise_order": teacher_pairs, "k": k}}
    empty = pd.DataFrame(columns=["column", "value", "n", "n_labelled", "n_agree", "accuracy", "ci_low", "ci_high",
                                  "agreement", "macro_f1", "teacher_accuracy", "teacher_ci_low",
                                  "teacher_ci_high", "gap"])
    extra = {"ranking": {f"ndcg@{k}": student[report.NDCG], "ndcg": student[report.NDCG],
                         "teacher_ndcg": teacher_figures[report.NDCG],
                         "pairwise_order": pair_share, "k": k, "n_queries": len(q),
                         "queries_top_k_differs": int(q["top_k_differs"].sum()),
                         "relevance": "holdout reference" if has_rel else
                         f"teacher scores of {teacher} (no holdout reference)" if judged else
                         "none: no holdout reference and no teacher answers fixed before the file"}}
    severe = {"rate": None, "n_severe": 0, "n": 0, "false_alarms": 0, "n_non_severe": 0, "classes": []}
    return report.Scored(overall, empty, severe, numbers), extra
