"""Benchmark: the review page (budget: a script run under 1 s for an evaluation of 100,000 rows).

Seeds the demo people and the "Comment moderation" project (qualified, a gate with slice floors on
category=threat and language=de, a severe class and a minimum of reviews per critical slice), then an
evaluation of 100,000 predictions with 4 slice columns and about 20 % disagreements, stored as the real
artifacts (predictions Parquet and report JSON, both hashed), and a few verdicts by two validators.
Times the page's whole script run through Streamlit's AppTest (app.py, then pages/review.py, logged in as
the validator ``val``), then core's pieces alone, beside a naive disagreement queue (a row-by-row Python
loop over ``itertuples`` and ``sorted``) on the same predictions, checked equal to core's queue. The page's floor
is reading its predictions once (hash + Parquet); every governance read vouches for its rows (see
core/store/vouched.py), and the table says how much of the page those checks take, and the machine's load.
Run: ``.venv/bin/python benchmarks/bench_review_page.py [--quick] [--strict] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import _pages
import _seed
import numpy as np
import pandas as pd
from sqlmodel import Session

from core.access import people, projects
from core.demo import seed as demo_mod
from core.domain.hashing import canonical_json
from core.evaluation.runs import get_evaluation
from core.evaluation.runs import load_predictions as load_predictions_of
from core.gate import gate
from core.qualify import qualification
from core.qualify.qualification import BetterMove
from core.review import review
from core.store import artifacts
from core.store.db import init_db, make_engine
from core.store.models import Evaluation, Project, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from streamlit.testing.v1 import AppTest

BUDGET_S = 1.0
PAGE = "pages/review.py"
LABELS = np.array(["ok", "spam", "insult", "threat"], dtype=object)
# Slice columns beside the contract's prediction columns: (name, values, weights).
SLICES = {
    "category": None,  # the reference label itself, as in the moderation tests
    "language": (["en", "de", "fr", "es"], [0.7, 0.12, 0.1, 0.08]),
    "channel": (["web", "app", "api"], [0.5, 0.35, 0.15]),
    "region": ([f"region-{k}" for k in range(8)], None),
}
GATE_EXTRA = {
    "slice_floors": [{"column": "category", "value": "threat", "floor": 0.9, "min_n": 30},
                     {"column": "language", "value": "de", "floor": 0.9, "min_n": 100}],
    "severe_errors": {"classes": ["threat"], "max_rate": 0.05},
    "min_reviews_per_critical_slice": 5,
}
QUALIFICATION = {
    "play": "cost-pressure", "evidence": "The teacher bill is the largest line of our inference budget.",
    "task_scope": "narrow", "monthly_volume": 1_000_000, "teacher_cost_per_1k": 4.0, "current_p95_ms": 800.0,
    "target_p95_ms": 50.0, "better_first_moves": {m.value: "ruled-out" for m in BetterMove},
    "teacher_third_party": False, "build_cost": 10_000.0, "student_cost_per_1k": 0.4,
}


# --------------------------------------------------------------------------- data


def make_predictions(n: int, seed: int = 0) -> pd.DataFrame:
    """Predictions in the issue-4 contract's shape: teacher right ~95 %, student agrees with it ~83 %."""
    rng = np.random.default_rng(seed)
    ref = rng.choice(len(LABELS), size=n, p=[0.6, 0.2, 0.18, 0.02])
    teacher = np.where(rng.random(n) < 0.95, ref, rng.integers(0, len(LABELS), n))
    student = np.where(rng.random(n) < 0.78, teacher, rng.integers(0, len(LABELS), n))
    ref_l, tea_l, stu_l = LABELS[ref], LABELS[teacher], LABELS[student]
    frame = {
        "id": np.array([f"c{i}" for i in range(n)], dtype=object),
        "text": np.array([f"comment {i}: the user wrote something about topic {i % 97}" for i in range(n)],
                         dtype=object),
        "reference": ref_l,
        "teacher_label": tea_l,
        "teacher_confidence": rng.uniform(0.6, 1.0, n),
        "student_label": stu_l,
        "student_confidence": np.round(rng.uniform(0.3, 1.0, n), 4),
        "severe": (ref_l == "threat") & (stu_l != ref_l),
        "category": ref_l.copy(),
    }
    for column, spec in SLICES.items():
        if spec is not None:
            values, weights = spec
            frame[column] = np.array(values, dtype=object)[rng.choice(len(values), size=n, p=weights)]
    return pd.DataFrame(frame)


def build_report(df: pd.DataFrame, spec: dict, *, evaluation: dict) -> dict:
    """A report in the contract's shape (as tests/review_helpers.build_report), criteria against ``spec``."""
    s_ok = (df["student_label"] == df["reference"]).to_numpy()
    t_ok = (df["teacher_label"] == df["reference"]).to_numpy()
    s_acc, t_acc = float(s_ok.mean()), float(t_ok.mean())
    criteria = [{"name": "quality floor (accuracy vs teacher)", "status": "PASS" if s_acc >= 0.98 * t_acc
                 else "FAIL", "value": s_acc, "threshold": 0.98 * t_acc, "n": len(df), "detail": "overall"}]
    slices = []
    scored = pd.DataFrame({"s": s_ok, "t": t_ok})
    for column in SLICES:
        agg = scored.groupby(df[column].to_numpy()).agg(n=("s", "size"), s=("s", "mean"), t=("t", "mean"))
        for value, r in agg.iterrows():
            slices.append({"column": column, "value": str(value), "n": int(r["n"]),
                           "student": {"accuracy": float(r["s"]), "ci_low": float(r["s"]), "ci_high": float(r["s"])},
                           "teacher": {"accuracy": float(r["t"])}, "gap": float(r["s"] - r["t"])})
    by_key = {(s["column"], s["value"]): s for s in slices}
    for f in spec["slice_floors"]:
        s = by_key.get((f["column"], f["value"]), {"n": 0, "student": {"accuracy": None}})
        status = ("INSUFFICIENT DATA" if s["n"] < f["min_n"]
                  else "PASS" if s["student"]["accuracy"] >= f["floor"] else "FAIL")
        criteria.append({"name": f"slice {f['column']}={f['value']}", "status": status,
                         "value": s["student"]["accuracy"], "threshold": f["floor"], "n": s["n"],
                         "detail": f"{f['column']}={f['value']}"})
    severe_rate = float(df["severe"].mean())
    criteria.append({"name": "severe-error rate", "status": "PASS" if severe_rate <= spec["severe_errors"]["max_rate"]
                     else "FAIL", "value": severe_rate, "threshold": spec["severe_errors"]["max_rate"],
                     "n": len(df), "detail": "severe"})
    return {
        "evaluation": evaluation,
        "overall": {"student": {"accuracy": s_acc}, "teacher": {"accuracy": t_acc}},
        "gap_to_teacher": {"accuracy": s_acc - t_acc},
        "slices": slices,
        "latency": {"student": {"p50_ms": 2.0, "p95_ms": 4.0, "batch_throughput": 5000.0},
                    "teacher": {"p50_ms": 400.0, "p95_ms": 900.0, "batch_throughput": 20.0}},
        "cost": {"student_per_1k": 0.4, "teacher_per_1k": 4.0},
        "severe": {"rate": severe_rate, "n_severe": int(df["severe"].sum()), "n": len(df)},
        "criteria": criteria,
        "passed": all(c["status"] == "PASS" for c in criteria),
    }


def make_evaluation(session: Session, *, project: Project, actor: User, df: pd.DataFrame) -> Evaluation:
    """Store the predictions Parquet and the report JSON as artifacts and insert the Evaluation row."""
    gv = gate.current(session, project_id=project.id)
    spec = gate.spec_of(gv).model_dump(mode="json")
    pred = artifacts.store_table(session, project=project, actor=actor, df=df, kind="predictions")
    report = build_report(df, spec, evaluation={
        "project_id": project.id, "round": 1, "gate_version": gv.version, "gate_hash": gv.content_hash,
        "gate_superseded": False, "training_run_id": None, "source": "imported",
        "holdout_fingerprint": "f" * 64, "n": len(df)})
    data = canonical_json(report).encode()
    path = artifacts.project_dir(project.id, "evaluations") / f"report-{pred.id}.json"
    path.write_bytes(data)
    art = artifacts.register(session, project=project, actor=actor, path=path, kind="evaluation-report")
    ev = Evaluation(project_id=project.id, round=1, gate_version_id=gv.id, source="imported",
                    predictions_artifact_id=pred.id, report_artifact_id=art.id,
                    report_hash=hashlib.sha256(data).hexdigest(), passed=report["passed"],
                    summary={"passed": report["passed"], "criteria": report["criteria"]}, created_by=actor.id)
    session.add(ev)
    session.commit()
    return ev


def seed(engine: Engine, n_rows: int, n_verdicts: int) -> tuple[int, int, int, pd.DataFrame]:
    """(validator id, project id, evaluation id, predictions) after seeding through core."""
    init_db(engine)
    with Session(engine, expire_on_commit=False) as session:
        demo_mod.seed(session)
        admin, sam, dana, val = (people.get_user(session, u) for u in ("admin", "sam", "dana", "val"))
        project = projects.get_project(session, demo_mod.MODERATION)
        qualification.record(session, actor=sam, project=project, inputs=QUALIFICATION, verdict="proceed")
        spec = gate.template("cost-pressure", QUALIFICATION)
        spec.update(GATE_EXTRA)
        gate.lock(session, actor=sam, project=project, spec=spec)
        df = make_predictions(n_rows)
        ev = make_evaluation(session, project=project, actor=dana, df=df)
        # A second validator, so the page shows kappa; both review the same critical items.
        vera = people.create_user(session, actor=admin, username="vera", display_name="Vera",
                                  password=_seed.BENCH_PASSWORD)
        projects.assign_role(session, actor=admin, project=project, username="vera", role="validator")
        items = df.loc[df["category"] == "threat", "id"].head(n_verdicts).tolist()
        for k, item in enumerate(items):
            for who in (val, vera):
                verdict = review.VERDICTS[(k + (who is vera) * (k % 3 == 0)) % len(review.VERDICTS)]
                review.record_verdict(session, actor=who, project=project, evaluation_id=ev.id, item_id=item,
                                      verdict=verdict)
        ids = (val.id, project.id, ev.id)
    with engine.begin() as conn:  # fold the WAL into the main file so every run reads the same thing
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return (*ids, df)


# --------------------------------------------------------------------------- the measures


def core_queue(engine: Engine, project_id: int, ev_id: int) -> review.Queue:
    with Session(engine) as session:
        return review.disagreement_queue(session, project=session.get(Project, project_id), evaluation_id=ev_id,
                                         limit=200)


def naive_queue(engine: Engine, project_id: int, ev_id: int) -> tuple[list[str], int]:
    """The same queue the obvious way: load the same table, then a Python loop over rows and ``sorted``."""
    with Session(engine) as session:
        evaluation = get_evaluation(session, project=session.get(Project, project_id), evaluation_id=ev_id)
        df = load_predictions_of(session, evaluation)
        spec = review._gate_spec(session, evaluation)
    floors = [(f.column, f.value) for f in spec.slice_floors if f.column in df.columns]
    severe = set(spec.severe_errors.classes if spec.severe_errors else [])
    positions = {c: i for i, c in enumerate(df.columns, start=1)}  # itertuples puts the index first
    ref_i, tea_i, stu_i, conf_i = (positions[c] for c in ("reference", "teacher_label", "student_label",
                                                           "student_confidence"))
    floor_i = [(positions[c], v) for c, v in floors]
    rows = []
    for row in df.itertuples(name=None):
        ref, tea, stu = row[ref_i], row[tea_i], row[stu_i]
        has_ref = ref is not None and ref == ref
        if stu != tea or (has_ref and (stu != ref or tea != ref)):
            critical = any(str(row[i]) == v for i, v in floor_i)
            severe_class = ref in severe or tea in severe
            conf = row[conf_i]
            nan_first = not (conf is not None and not (isinstance(conf, float) and math.isnan(conf)))
            rows.append((not critical, not severe_class, not nan_first, 0.0 if nan_first else conf, row[1]))
    ordered = sorted(rows, key=lambda r: r[:4])  # stable, like core's sort
    return [str(r[4]) for r in ordered[:200]], len(ordered)


def load_predictions(engine: Engine, project_id: int, ev_id: int) -> pd.DataFrame:
    with Session(engine) as session:
        evaluation = get_evaluation(session, project=session.get(Project, project_id), evaluation_id=ev_id)
        return load_predictions_of(session, evaluation)


def curve(engine: Engine, project_id: int, ev_id: int) -> pd.DataFrame:
    with Session(engine) as session:
        return review.evaluation_curve(session, project=session.get(Project, project_id), evaluation_id=ev_id)


def coverage(engine: Engine, project_id: int, ev_id: int) -> list[review.SliceCoverage]:
    with Session(engine) as session:
        return review.review_coverage(session, project=session.get(Project, project_id), evaluation_id=ev_id)


def page_runner(user_id: int, project_id: int) -> AppTest:
    """An AppTest on the review page, logged in as the validator, after its first (cold) run."""
    # AppTest's own set-up calls st outside a script run, which logs a harmless warning.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    at = _seed.logged_in_app(user_id=user_id, project_id=project_id, timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    return at


def check_page(at: AppTest, total: int) -> None:
    if at.exception:
        raise SystemExit(f"{PAGE} raised: {at.exception[0].message}")
    captions = " ".join(c.value for c in at.caption)
    if f"{total:,} examples where student and teacher differ" not in captions:
        raise SystemExit(f"{PAGE} does not show the queue of {total:,} disagreements: {captions[:300]!r}")
    if len(at.dataframe) < 4:  # criteria, queue, kappa, coverage
        raise SystemExit(f"{PAGE} shows {len(at.dataframe)} tables, expected the criteria, the queue, kappa "
                         "and coverage.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows: a smoke run.")
    parser.add_argument("--repeat", type=int, help="Measured runs per measure (median; default 7, 3 with --quick).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when the budget is missed.")
    args = parser.parse_args(argv)
    n_rows, n_verdicts = (5_000, 6) if args.quick else (100_000, 12)
    repeat = args.repeat or (3 if args.quick else 7)
    has_page = (_seed.REPO_ROOT / PAGE).exists()

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        engine = make_engine(_seed.use_temp_database(Path(tmp)))
        seeded = _seed.measure(lambda: seed(engine, n_rows, n_verdicts), 1)
        uid, pid, ev_id, df = seeded.result
        load = _seed.measure(lambda: load_predictions(engine, pid, ev_id), repeat, warmup=1)
        core = _seed.measure(lambda: core_queue(engine, pid, ev_id), repeat, warmup=1)
        naive = _seed.measure(lambda: naive_queue(engine, pid, ev_id), repeat, warmup=1)
        ids, total = naive.result
        if core.result.items["id"].astype(str).tolist() != ids or core.result.total != total:
            raise SystemExit("the naive queue differs from disagreement_queue(): the benchmark compares unlike work.")
        crv = _seed.measure(lambda: curve(engine, pid, ev_id), repeat, warmup=1)
        cov = _seed.measure(lambda: coverage(engine, pid, ev_id), repeat, warmup=1)
        page = cold = page_vouching = None
        if has_page:
            cold = _seed.measure(lambda: page_runner(uid, pid), 1)
            at = cold.result
            check_page(at, total)
            page = _seed.measure(at.run, repeat, warmup=1)
            check_page(at, total)
            page_vouching = _pages.vouching_per_call(at.run, repeat)
        engine.dispose()

    _seed.print_table(
        f"Review page: an evaluation of {n_rows:,} rows, {len(SLICES)} slice columns, {total:,} disagreements "
        f"({total / n_rows:.0%}), as the validator val (seeded in {seeded.best:.1f} s), "
        f"median of {repeat} after a warm-up; {_pages.load()}",
        [
            ("measure", "time", "budget", "verdict"),
            _seed.page_row(page, page=PAGE, budget_s=BUDGET_S),
            ("page script run, slowest", _seed.ms(page.worst) if page else "skipped", "", ""),
            ("first view, cold (imports, 2 runs)", _seed.ms(cold.best) if cold else "skipped", "", ""),
            ("load predictions (hash + Parquet)", _seed.ms(load.median), "", ""),
            ("disagreement_queue() alone", _seed.ms(core.median), "", ""),
            ("evaluation_curve() alone", _seed.ms(crv.median), "", ""),
            ("review_coverage() alone", _seed.ms(cov.median), "", ""),
            ("naive queue (itertuples + sorted)", _seed.ms(naive.median), "", ""),
            ("ratio naive / disagreement_queue()", f"{naive.median / core.median:.1f}x", "", ""),
            ("ratio page / load predictions", f"{page.median / load.median:.1f}x" if page else "skipped", "", ""),
            _pages.vouching_row("vouching checks, per page run", *page_vouching, of=page.median) if page
            else ("vouching checks, per page run", "skipped", "", ""),
        ],
    )
    print(f"  after: {_pages.load()}")
    return 1 if args.strict and (page is None or page.median >= BUDGET_S) else 0


if __name__ == "__main__":
    sys.exit(main())
