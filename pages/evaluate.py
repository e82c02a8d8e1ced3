"""Driver, step 4: score a student on the locked holdout against the locked gate, beside the teacher and
cheap baselines; or bring predictions made elsewhere and score them the same way."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.access import session as app_db
from core.access.projects import roles_of
from core.domain.display import number, tidy
from core.domain.economics import StudentCost, cost_sentence
from core.domain.roles import Role
from core.evaluation import compare
from core.evaluation import runs as evals
from core.evaluation.imports import KINDS, import_predictions, notes, overall_metrics
from core.training import runs as training
from pages._show import chart, criteria_table, esc, short_hash, table
from pages._ui import act, current_project, db, job_panel, require_user, show_flash, start_job

st.title(":material/query_stats: Evaluate")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_driver = Role.DRIVER in roles_of(session, project_id=project.id, user_id=user.id)
    done_runs = [r for r in training.list_runs(session, project_id=project.id) if r.status == "done"]
    evaluations = evals.list_evaluations(session, project_id=project.id)
    open_jobs = app_db.open_jobs(session, project_id=project.id, kinds=("evaluate",), limit=2)

st.caption(f"Project: {esc(project.name)}. Scored on the holdout fixed before training, against the gate locked "
           "before training.")
if not is_driver:
    st.info(f"Only a driver of {esc(project.name)} starts evaluations; you can read them.")
for job in open_jobs:
    job_panel(job.id, label="Evaluation")

c1, c2 = st.columns(2)
with c1.form("evaluate"):
    st.markdown("**Evaluate a trained student**")
    names = {r.id: f"run #{r.id} · {r.family} {r.size}" for r in done_runs}
    run_id = st.selectbox("Training run", list(names), format_func=names.get, index=len(names) - 1 if names else 0)
    if st.form_submit_button("Start evaluation", type="primary", disabled=not (is_driver and done_runs)):
        with db() as session:
            job = act(lambda: evals.start_evaluation(session, actor=require_user(session), project=project,
                                                     training_run_id=run_id))
        start_job(job)
with c2:
    st.markdown("**Bring your own predictions** for the holdout")
    kind = st.selectbox("Output kind", KINDS, format_func={
        "label": "labels", "text": "text (exact and normalised match)", "json": "JSON (field-level accuracy)",
        "ranking": "ranking (NDCG, pairwise order)"}.get)
    upload = st.file_uploader("Predictions file (id, student; optional teacher, confidence, text, judge_score)",
                              type=["csv", "jsonl", "parquet"], disabled=not is_driver,
                              help="One row per holdout id (download them on the Coverage and holdout page). "
                                   "References come from the locked holdout and teacher figures from a teacher run "
                                   "recorded before the file (one Stillroom ran, or a file another driver imported); "
                                   "reference and teacher columns are only compared. Measuring the "
                                   "student's latency here: `stillroom eval import --latency-model-dir` or "
                                   "`--latency-endpoint`.")
    with st.expander("Latency declared by a person (else: not measured)"):
        declared_p95 = st.number_input("Declared p95 latency (ms)", min_value=0.0, value=0.0)
        declared_by = st.text_input("Declared by", placeholder="the person who vouches for the figures")
        declared_method = st.text_input("How it was measured", placeholder="tool, load, batch size, hardware")
        declared_where = st.text_input("Where it was measured", placeholder="environment, region, date")
    declared = ({"p95_ms": declared_p95, "declared_by": declared_by, "method": declared_method,
                 "where": declared_where} if declared_p95 > 0 else None)
    if upload is not None and st.button("Import and evaluate", disabled=not is_driver):
        with db() as session:
            act(lambda: import_predictions(session, actor=require_user(session), project=project, kind=kind,
                                           data=upload.getvalue(), filename=upload.name,
                                           declared_latency=declared),
                lambda e: f"Evaluation #{e.id} recorded: {'PASS' if e.passed else 'FAIL'}.", rerun=True)

if not evaluations:
    st.info("No evaluation yet.")
    st.stop()

labels = {e.id: f"evaluation #{e.id} · round {e.round} · {e.source} · {'PASS' if e.passed else 'FAIL'}"
          for e in evaluations}
if len(evaluations) > 1:
    with st.expander("Compare evaluations side by side (rounds, families, sizes)", expanded=False):
        picked = st.multiselect("Evaluations (the first is the base the changes are measured from)",
                                list(labels), format_func=labels.get, placeholder="pick two or more")
        if len(picked) >= 2:
            with db() as session:
                side = act(lambda: compare.compare(session, project=project, evaluation_ids=picked))
            if side is not None:
                table(side.lines(), hide_index=True, width="stretch")
                slices = [r for r in side.rows if r.kind == "slice"] or side.rows
                fig = go.Figure([go.Bar(
                    name=side.labels[e.id], x=[r.name for r in slices],
                    y=[r.figure(e.id).value for r in slices],
                    error_y=dict(type="data", symmetric=False, array=[r.figure(e.id).above for r in slices],
                                 arrayminus=[r.figure(e.id).below for r in slices]))
                    for e in side.evaluations])
                chart(fig, barmode="group", height=360, yaxis={"range": [0, 1.02]},
                      title="Per slice: the student's accuracy with its 95 % interval" if slices is not side.rows
                      else "Criteria")
ev_id = st.selectbox("Read", list(labels), format_func=labels.get, index=len(labels) - 1)
with db() as session:
    ev = evals.get_evaluation(session, project=project, evaluation_id=ev_id)
    report = act(lambda: evals.load_report(session, ev))
    superseded = evals.is_superseded(session, ev)
if report is None:
    st.stop()
if superseded:
    st.warning("This evaluation was made under a gate version that has since been superseded: evaluate again "
               "under the current gate before anyone decides on it.")
(st.success if ev.passed else st.error)(f"Gate {'passed' if ev.passed else 'not met'} · report hash "
                                         f"`{short_hash(ev.report_hash)}`")
meta = report.evaluation
if meta.holdout_fingerprint:
    st.caption(f"Scored on holdout version {meta.holdout_version or 1} (fingerprint "
               f"`{short_hash(meta.holdout_fingerprint)}`, {meta.n:,} rows).")
criteria_table(report.criteria)

unread = {k: v for k, v in report.unreadable.items() if v}
if unread:
    st.warning("Rows without a readable answer, scored as wrong for whoever gave them (overall and per slice): "
               + ", ".join(f"{name} {n:,}" for name, n in unread.items()) + ".")
severe = report.severe
if severe.classes:
    st.caption(f"Severe classes ({esc(', '.join(severe.classes))}): the student missed or mislabelled "
               f"{severe.n_severe:,} of {severe.n:,} severe items; it labelled "
               f"{severe.false_alarms or 0:,} of {severe.n_non_severe or 0:,} other items as severe "
               "(false alarms, shown, not gated).")

for line in notes(report):
    st.caption(esc(line))
overall = report.overall
models = [m for m in ("student", "teacher", "tfidf", "majority") if m in overall]
if models:
    metrics = overall_metrics(report)
    fig = go.Figure([go.Bar(name=m, x=list(metrics), y=[getattr(overall[m], k) for k in metrics]) for m in models])
    fig.update_layout(barmode="group", title="Overall, on the holdout", height=320, yaxis={"range": [0, 1]},
                      margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, width="stretch")
per_field = (report.part("json") or {}).get("per_field") or {}
if per_field:
    table(pd.DataFrame([{"Field": name, "n": f["n"], "Student accuracy": f["accuracy"],
                                "Teacher accuracy": f.get("teacher_accuracy"), "Floor": f.get("floor"),
                                "Rules": ", ".join(f.get("rules") or [])} for name, f in per_field.items()]),
                 hide_index=True, width="stretch")
if report.slices:
    table(tidy(pd.DataFrame([{
        "Slice": f"{s.column}={s.value}", "n": s.n, "Student accuracy": s.student.accuracy,
        "95 % interval": f"{s.student.ci_low:.3f}–{s.student.ci_high or 0:.3f}"
        if s.student.ci_low is not None else "", "Teacher accuracy": s.teacher.accuracy,
        "Gap": s.gap} for s in report.slices]).sort_values("Gap", na_position="last")),
        hide_index=True, width="stretch")
if (student_speed := report.latency.student) is not None:
    cols = st.columns(4)
    # A teacher whose outputs came from a file was not timed here: "not measured", never 0 ms.
    cols[0].metric("Student p95", number(student_speed.p95_ms, digits=2, unit="ms", missing="not measured"))
    teacher_speed = report.latency.teacher
    cols[1].metric("Teacher p95", number(teacher_speed.p95_ms if teacher_speed else None, digits=2, unit="ms",
                                         missing="not measured"))
    throughput = student_speed.batch_throughput
    cols[2].metric("Student throughput", f"{number(round(throughput))}/s" if throughput else "not measured")
    cols[3].metric("Student $ per 1k", number(report.cost.student_per_1k, digits=4, missing="not measured"),
                   help=cost_sentence(StudentCost.from_report(report.cost.model_dump())))
