"""Validator, step 4: per-slice results beside the teacher, the disagreement queue, verdicts, the fallback
threshold and the sign-off. A driver of the project is refused by core whatever this page shows."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.domain.economics import StudentCost, cost_sentence
from core.domain.rollout_state import DEFAULT_FALLBACK_THRESHOLD
from core.evaluation import runs as evaluations
from core.review import review
from pages._show import chart, criteria_table, esc, short_hash, side_by_side, table
from pages._ui import act, db, linked_index, page_start, require_user

user, project, _ = page_start(":material/rate_review: Review and sign off")
with db() as session:
    evals = evaluations.list_evaluations(session, project_id=project.id)

if not evals:
    st.info("No evaluation yet: the driver evaluates a student on the holdout first.")
    st.stop()

labels = {e.id: f"evaluation #{e.id} · round {e.round} · {'PASS' if e.passed else 'FAIL'} · "
                f"{short_hash(e.report_hash)}" for e in evals}
ev_id = st.selectbox("Evaluation", [e.id for e in evals], format_func=labels.get,
                     index=linked_index("evaluation", [e.id for e in evals], default=len(evals) - 1))
with db() as session:
    report = act(lambda: evaluations.load_report(session, evaluations.get_evaluation(
        session, project=project, evaluation_id=ev_id)))
    refusal = review.review_refusal(session, actor=user, project=project, evaluation_id=ev_id)
    threshold_refusal = review.threshold_refusal(session, actor=user, project=project)
if report is None:
    st.stop()
can_review = refusal is None
if not can_review:
    st.info(f"{esc(refusal)} You can look.")

st.subheader("The gate, criterion by criterion")
criteria_table(report.criteria)

rows = review.heatmap_rows(report)
if rows:
    fig = go.Figure(go.Heatmap(
        z=[r.gaps for r in rows], x=["accuracy", "macro-F1", "agreement"], y=[r.label for r in rows],
        colorscale="RdBu", zmid=0, colorbar={"title": "gap"},
        text=[[f"{v:.3f}" if v is not None else "" for v in r.values] for r in rows], texttemplate="%{text}",
        hovertemplate="%{y} · %{x}: %{text} (gap %{z:+.3f})<extra></extra>"))
    chart(fig, title="Slices, worst first: the student's score, coloured by its gap (to the teacher; agreement: to "
                     "its overall agreement)", height=max(300, 26 * len(rows) + 120),
          margin=dict(l=10, r=10, t=50, b=10), yaxis={"autorange": "reversed"})

st.subheader("Disagreements")
with db() as session:
    preds = evaluations.load_predictions(session, evaluations.get_evaluation(session, project=project,
                                                                           evaluation_id=ev_id))
slice_cols = review.slice_columns(preds)
c1, c2 = st.columns(2)
col = c1.selectbox("Slice column", [None, *slice_cols], format_func=lambda c: "every slice" if c is None else c)
val = c2.selectbox("Value", sorted(preds[col].astype(str).unique()) if col else [None], disabled=col is None)
with db() as session:
    queue = act(lambda: review.disagreement_queue(session, project=project, evaluation_id=ev_id,
                                                  slice=(col, val) if col else None, limit=200,
                                                  predictions=preds))
    mine = {v.item_id: v.verdict for v in review.my_verdicts(session, actor=user, evaluation_id=ev_id)}
if queue is not None:
    st.caption(f"{queue.total:,} examples where student and teacher differ or either misses the reference; "
               f"critical slices and severe classes first. You have reviewed {len(mine):,}.")
    shown = queue.items.assign(your_verdict=[mine.get(i, "") for i in queue.items["id"].astype(str)])
    table(shown[["id", "text", "reference", "teacher_label", "student_label", "student_confidence",
                        "critical_slice", "severe_class", "your_verdict"]], hide_index=True, width="stretch")
    todo = [i for i in queue.items["id"].astype(str) if i not in mine]
    if can_review and todo:
        with st.form("verdict", clear_on_submit=True):
            item = st.selectbox("Example", todo, index=linked_index("item", todo, default=0))
            row = queue.items[queue.items["id"].astype(str) == item].iloc[0]
            st.text(row["text"])  # user text rendered as text
            st.caption(f"reference: {esc(row['reference'])} · teacher: {esc(row['teacher_label'])} · student: "
                       f"{esc(row['student_label'])}")
            if isinstance(row.get("diff"), str) and row["diff"]:  # imported text: side by side, core's word diff
                side_by_side(("Target", row.get("target")), ("Student", row["student_label"]))
                st.text("diff: " + row["diff"])
            verdict = st.radio("Verdict", review.VERDICTS, horizontal=True)
            rating = st.select_slider("Rating of the student's answer (optional)", [None, 1, 2, 3, 4, 5],
                                      format_func=lambda r: "no rating" if r is None else str(r))
            comment = st.text_input("Comment")
            if st.form_submit_button("Record verdict", type="primary"):
                with db() as session:
                    act(lambda: review.record_verdict(session, actor=require_user(session), project=project,
                                                      evaluation_id=ev_id, item_id=item, verdict=verdict,
                                                      comment=comment, rating=rating),
                        f"Verdict on {item} recorded.", rerun=True)

with db() as session:
    pairs = review.agreement(session, evaluation_id=ev_id, viewer=user)
    rated = review.ratings(session, evaluation_id=ev_id, viewer=user)
    coverage = review.review_coverage(session, project=project, evaluation_id=ev_id, predictions=preds)
    curve = review.evaluation_curve(session, project=project, evaluation_id=ev_id, predictions=preds, report=report)
    signed = review.sign_offs(session, evaluation_id=ev_id)
    proposals = review.threshold_proposals(session, evaluation_id=ev_id)
    no_confidence = review.missing_confidence(session, project=project, evaluation=evaluations.get_evaluation(
        session, project=project, evaluation_id=ev_id), predictions=preds)
if rated.n:
    st.metric("Human rating of the student's answers", f"{rated.mean:.2f} / 5",
              help=f"{rated.n} ratings: " + ", ".join(f"{k}: {v}" for k, v in rated.counts.items()))
if pairs:
    table(pd.DataFrame([{"Validators": f"{p.validator_a} / {p.validator_b}", "Shared items": p.n_items,
                                "Cohen's kappa": p.kappa} for p in pairs]), hide_index=True)
if coverage:
    table(pd.DataFrame([{"Critical slice": f"{c.column}={c.value}", "Reviewed": c.reviewed,
                                "Required": c.required} for c in coverage]), hide_index=True)

st.subheader("Fallback threshold")
fig = go.Figure()
fig.add_trace(go.Scatter(x=curve["threshold"], y=curve["served_share"], name="share the student serves"))
fig.add_trace(go.Scatter(x=curve["threshold"], y=curve["student_accuracy"], name="student accuracy there"))
fig.add_trace(go.Scatter(x=curve["threshold"], y=curve["fallback_rate"], name="fallback to the teacher"))
if curve["blended_cost_per_1k"].notna().any():
    fig.add_trace(go.Scatter(x=curve["threshold"], y=curve["blended_cost_per_1k"], name="blended $ per 1k",
                             yaxis="y2"))
chart(fig, height=340, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="confidence threshold",
      yaxis={"range": [0, 1.02]}, yaxis2={"overlaying": "y", "side": "right", "title": "$ per 1k"})
st.caption(f"Blended cost: {esc(cost_sentence(StudentCost.from_report(report.cost.model_dump())))}.")
can_propose = threshold_refusal is None
if proposals:
    p = proposals[-1]
    chosen = f" ({review.SERVE_EVERY_ANSWER})" if review.serves_every_answer(p) else ""
    st.success(f"Proposed for rollout: threshold {p.threshold:.2f}{chosen} ({p.created_at:%Y-%m-%d %H:%M} UTC); the "
               f"student serves {p.served_share:.1%}, the teacher answers {p.fallback_rate:.1%}"
               + (f", {len(proposals) - 1} earlier proposal(s)." if len(proposals) > 1 else "."), icon="🎚️")
else:
    st.info("No threshold proposed yet: the rollout cannot start without one.")
if no_confidence:
    st.warning(f"Answers without confidence: {esc(no_confidence)}.")
    if st.button(f"Serve every answer of evaluation #{ev_id} (threshold 0, no fallback)", disabled=not can_propose):
        with db() as session:
            act(lambda: review.propose_threshold(session, actor=require_user(session), project=project,
                                                 evaluation_id=ev_id, serve_every_answer=True),
                lambda p: f'"{review.SERVE_EVERY_ANSWER}" recorded: the student serves {p.served_share:.1%}, none '
                          "falls back to the teacher.", rerun=True)
# Keyed on the proposals so the slider starts from the one in force after each proposal.
with st.form(f"threshold_{len(proposals)}"):
    threshold = st.slider("Below this confidence the teacher answers", 0.0, 1.0,
                          float(proposals[-1].threshold) if proposals else DEFAULT_FALLBACK_THRESHOLD, 0.01)
    if st.form_submit_button("Propose this threshold for rollout", disabled=not can_propose):
        with db() as session:
            act(lambda: review.propose_threshold(session, actor=require_user(session), project=project,
                                                 evaluation_id=ev_id, threshold=threshold),
                lambda p: f"Threshold {p.threshold:.2f} proposed: the student serves {p.served_share:.1%}.",
                rerun=True)

st.subheader("Sign-off")
for s in signed:
    st.markdown(f"- {'✅ approved' if s.approve else '❌ rejected'} {s.created_at:%Y-%m-%d %H:%M} UTC, hash "
                f"`{short_hash(s.evaluation_hash)}`" + (f": {esc(s.comment)}" if s.comment else ""))
student_latency = report.latency.student_figures
with st.form("signoff"):
    choice = st.radio("Your sign-off", ["approve", "reject"], horizontal=True)
    comment = st.text_area("Comment (required to reject)")
    covers = False
    if student_latency.source == "declared":
        st.warning(f"The student's latency was {esc(student_latency.describe())}.")
        covers = st.checkbox("My approval also covers the declared latency figures")
    if st.form_submit_button(f"Sign off evaluation #{ev_id}", type="primary", disabled=not can_review):
        with db() as session:
            act(lambda: review.sign_off(session, actor=require_user(session), project=project, evaluation_id=ev_id,
                                        approve=choice == "approve", comment=comment,
                                        covers_declared_latency=covers),
                lambda s: f"Evaluation #{ev_id} {'approved' if s.approve else 'rejected'}; the sign-off names "
                          f"{s.evaluation_hash[:16]}.", rerun=True)
