"""Evaluations built directly for the review and decision tests (until core.evaluation runs them).

``make_evaluation`` stores a predictions table and a report in the issue-4 contract's shape, with
criteria computed from the predictions against the gate, and inserts the Evaluation row.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sqlmodel import Session

from conftest import good_qualification
from core.access import projects
from core.domain.hashing import canonical_json
from core.evaluation.runs import load_predictions
from core.gate import gate
from core.store import artifacts, audit
from core.store.models import Evaluation, GateVersion, Project, User

MODERATION_GATE_EXTRA = {
    "slice_floors": [{"column": "category", "value": "threat", "floor": 0.9, "min_n": 30}],
    "severe_errors": {"classes": ["threat"], "max_rate": 0.05},
    "min_reviews_per_critical_slice": 5,
}


def moderation_gate(**overrides) -> dict:
    spec = gate.template("cost-pressure", good_qualification())
    spec.update(MODERATION_GATE_EXTRA)
    spec.update(overrides)
    return spec


def lock_moderation_gate(session: Session, demo: dict, project: Project, **overrides) -> GateVersion:
    return gate.lock(session, actor=demo["sam"], project=project, spec=moderation_gate(**overrides),
                     reason="" if gate.current(session, project_id=project.id) is None else "tighten")


def moderation_predictions(*, n: int = 1000, n_threat: int = 40, threat_wrong: int = 8, seed: int = 0,
                           n_de: int = 0) -> pd.DataFrame:
    """Aggregate accuracy high; the rare, severe ``threat`` category fails its floor."""
    rng = np.random.default_rng(seed)
    labels = np.where(np.arange(n) < n_threat, "threat", rng.choice(["ok", "spam", "insult"], size=n))
    category = labels.copy()
    student = labels.copy()
    student[:threat_wrong] = "ok"  # the student misses threats
    others = np.arange(n_threat, n)
    wrong = rng.choice(others, size=max(1, len(others) // 100), replace=False)
    student[wrong] = np.where(labels[wrong] == "ok", "spam", "ok")
    teacher = labels.copy()
    teacher[rng.choice(others, size=5, replace=False)] = "insult"
    df = pd.DataFrame({
        "id": [f"c{i}" for i in range(n)],
        "text": [f"comment {i}" for i in range(n)],
        "reference": labels.astype(object),
        "teacher_label": teacher.astype(object),
        "teacher_confidence": rng.uniform(0.6, 1.0, n),
        "student_label": student.astype(object),
        "student_confidence": np.round(rng.uniform(0.3, 1.0, n), 4),
        "severe": (labels == "threat") & (student != labels),
        "category": category.astype(object),
        "language": np.where(np.arange(n) < n - n_de, "en", "de").astype(object),
    })
    return df


def _acc(a: pd.Series, b: pd.Series) -> float:
    return float((a.to_numpy() == b.to_numpy()).mean()) if len(a) else 0.0


def build_report(df: pd.DataFrame, spec: dict, *, evaluation: dict) -> dict:
    """A report in the contract's shape, its criteria computed from ``df`` against the gate spec."""
    s_acc, t_acc = _acc(df["student_label"], df["reference"]), _acc(df["teacher_label"], df["reference"])
    criteria = [{"name": "quality floor (accuracy vs teacher)", "status": "PASS" if s_acc >= 0.98 * t_acc
                 else "FAIL", "value": s_acc, "threshold": 0.98 * t_acc, "n": len(df), "detail": "overall"}]
    slices = []
    for column in [c for c in df.columns if c in ("category", "language")]:
        for value, part in df.groupby(column):
            sa, ta = _acc(part["student_label"], part["reference"]), _acc(part["teacher_label"], part["reference"])
            slices.append({"column": column, "value": str(value), "n": len(part),
                           "student": {"accuracy": sa, "ci_low": sa, "ci_high": sa},
                           "teacher": {"accuracy": ta}, "gap": sa - ta})
    by_key = {(s["column"], s["value"]): s for s in slices}
    for f in spec["slice_floors"]:
        s = by_key.get((f["column"], f["value"]), {"n": 0, "student": {"accuracy": None}})
        status = ("INSUFFICIENT DATA" if s["n"] < f["min_n"]
                  else "PASS" if s["student"]["accuracy"] >= f["floor"] else "FAIL")
        criteria.append({"name": f"slice {f['column']}={f['value']}", "status": status,
                         "value": s["student"]["accuracy"], "threshold": f["floor"], "n": s["n"],
                         "detail": f"{f['column']}={f['value']}"})
    # Severe misses as the gate check counts them: of the items whose truth is severe, the share missed.
    truly_severe = df["reference"].isin(spec["severe_errors"]["classes"])
    n_severe_items = int(truly_severe.sum())
    severe_rate = float(df.loc[truly_severe, "severe"].mean()) if n_severe_items else 0.0
    ceiling = spec["severe_errors"]["max_rate"]
    criteria.append({"name": "severe classes missed", "status": "PASS" if severe_rate <= ceiling else "FAIL",
                     "value": severe_rate, "threshold": ceiling,
                     "n": n_severe_items, "detail": "severe", "direction": "lower", "unit": "proportion"})
    return {
        "evaluation": evaluation,
        "overall": {"student": {"accuracy": s_acc}, "teacher": {"accuracy": t_acc}},
        "gap_to_teacher": {"accuracy": s_acc - t_acc},
        "slices": slices,
        "latency": {"student": {"p50_ms": 2.0, "p95_ms": 4.0, "batch_throughput": 5000.0},
                    "teacher": {"p50_ms": 400.0, "p95_ms": 900.0, "batch_throughput": 20.0}},
        "cost": {"student_per_1k": 0.4, "teacher_per_1k": 4.0},
        "severe": {"rate": severe_rate, "n_severe": int(df["severe"].sum()), "n": n_severe_items},
        "criteria": criteria,
        "passed": all(c["status"] == "PASS" for c in criteria),
    }


def make_evaluation(session: Session, *, project: Project, actor: User, df: pd.DataFrame,
                    round_: int = 1, report_overrides: dict | None = None,
                    training_run_id: int | None = None) -> Evaluation:
    gv = gate.current(session, project_id=project.id)
    spec = gate.spec_of(gv).model_dump(mode="json")
    pred = artifacts.store_table(session, project=project, actor=actor, df=df, kind="predictions")
    report = build_report(df, spec, evaluation={
        "project_id": project.id, "round": round_, "gate_version": gv.version, "gate_hash": gv.content_hash,
        "training_run_id": None, "source": "imported",
        "holdout_fingerprint": "f" * 64, "n": len(df)})
    report.update(report_overrides or {})
    data = canonical_json(report).encode()
    path = artifacts.project_dir(project.id, "evaluations") / f"report-{pred.id}.json"
    path.write_bytes(data)
    art = artifacts.register(session, project=project, actor=actor, path=path, kind="evaluation-report")
    ev = Evaluation(project_id=project.id, round=round_, gate_version_id=gv.id, training_run_id=training_run_id,
                    source="trained" if training_run_id else "imported",
                    predictions_artifact_id=pred.id, report_artifact_id=art.id,
                    report_hash=hashlib.sha256(data).hexdigest(), passed=report["passed"],
                    summary={"passed": report["passed"], "criteria": report["criteria"]}, created_by=actor.id)
    recorded(session, actor=actor, action="evaluation.record", entity="evaluation", row=ev)
    session.commit()
    return ev


def recorded(session: Session, *, actor: User, action: str, entity: str, row):  # noqa: ANN001, ANN201
    """Add a row built directly together with its audit event, as core does: the chain vouches only for rows
    whose event carries their content hash (issue 9)."""
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action=action, entity=entity, entity_id=row.id,
                 project_id=getattr(row, "project_id", None))
    return row


def passing_predictions(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """Every criterion of the moderation gate passes: threats answered right, few errors elsewhere."""
    return moderation_predictions(n=n, n_threat=40, threat_wrong=0, seed=seed)


def add_validator(session: Session, demo: dict, project: Project, username: str) -> User:
    from core.access import people

    user = people.create_user(session, actor=demo["admin"], username=username, display_name=username.title(),
                              password="validator-pass-123")
    projects.assign_role(session, actor=demo["admin"], project=project, username=username, role="validator")
    return user


# --------------------------------------------------------------------------- fixtures (pytest_plugins)


@pytest.fixture
def gated(session, demo, qualified) -> Project:
    """The moderation project, qualified, with a gate naming the rare, severe ``threat`` category."""
    lock_moderation_gate(session, demo, qualified)
    return qualified


@pytest.fixture
def failing_eval(session, demo, gated) -> Evaluation:
    """Aggregate accuracy passes; category=threat fails its floor."""
    return make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions())


@pytest.fixture
def passing_eval(session, demo, gated) -> Evaluation:
    return make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions())


def review_items(session: Session, evaluation: Evaluation, *, column: str, value: str, n: int) -> list[str]:

    df = load_predictions(session, evaluation)
    return df.loc[df[column] == value, "id"].head(n).tolist()


def approve(session: Session, demo: dict, project: Project, evaluation: Evaluation, *, threshold: float = 0.5):
    """Review enough threat items, approve, and propose a threshold: everything ship needs besides passing."""
    from core.review import review

    for item in review_items(session, evaluation, column="category", value="threat", n=5):
        review.record_verdict(session, actor=demo["val"], project=project, evaluation_id=evaluation.id,
                              item_id=item, verdict="student-right", comment="")
    review.sign_off(session, actor=demo["val"], project=project, evaluation_id=evaluation.id, approve=True,
                    comment="looked at the threats")
    review.propose_threshold(session, actor=demo["oscar"], project=project, evaluation_id=evaluation.id,
                             threshold=threshold)
