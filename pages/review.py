"""Validator, step 4: per-slice results beside the teacher, the disagreements one at a time (core.review.stream:
the next unreviewed after each verdict, keys 1-4 and the arrows, nothing preselected), the fallback threshold and
the sign-off. A driver of the project is refused by core whatever this page shows."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.access.session import Project
from core.domain.economics import StudentCost, cost_sentence
from core.domain.rollout_state import DEFAULT_FALLBACK_THRESHOLD
from core.evaluation import runs as evaluations
from core.review import review, stream
from pages._show import chart, criteria_table, esc, short_hash, side_by_side, table
from pages._ui import act, db, linked_index, page_start, require_user


def _go(at_key: str, item_id: str | None) -> None:
    st.session_state[at_key] = item_id


def _show_item(item: stream.StreamItem) -> None:
    marks = [m for m, on in (("critical slice", item.critical_slice), ("severe class", item.severe_class)) if on]
    st.markdown(f"**{esc(item.item_id)}**" + (f" · {', '.join(marks)}" if marks else ""))
    st.text(item.text)  # user text rendered as text
    st.caption(f"reference: {esc(item.reference or '—')} · teacher: {esc(item.teacher_label or '—')} · student: "
               f"{esc(item.student_label or '—')}")
    if item.diff:  # imported text: side by side, core's word diff
        side_by_side(("Target", item.target), ("Student", item.student_label))
        st.text("diff: " + item.diff)


def _judge(*, at_key: str, form_key: str, project: Project, evaluation_id: int, item_id: str, verdict: str,
           after: str | None) -> None:
    """A verdict button's callback: recorded before the page reruns, so one run shows the next item."""
    def record():
        with db() as session:
            return review.record_verdict(session, actor=require_user(session), project=project,
                                         evaluation_id=evaluation_id, item_id=item_id, verdict=verdict,
                                         comment=st.session_state.get(f"{form_key}_comment", ""),
                                         rating=st.session_state.get(f"{form_key}_rating"))
    if act(record, lambda v: f"Verdict {v.verdict} on {v.item_id} recorded.") is not None:
        _go(at_key, after or item_id)  # on to the next unreviewed item


def _verdict_form(step: stream.StreamStep, at_key: str, *, project: Project, evaluation_id: int) -> None:
    """Nothing preselected: the verdict is the button pressed (keys 1-4). Keyed on the item, so the rating and
    the comment start empty on the next one and survive a refused verdict."""
    item = step.item
    form_key = f"verdict_{at_key}_{item.item_id}"
    with st.form(form_key):
        st.select_slider("Rating of the student's answer (optional)", [None, 1, 2, 3, 4, 5],
                         format_func=lambda r: "no rating" if r is None else str(r), key=f"{form_key}_rating")
        st.text_input("Comment (optional)", key=f"{form_key}_comment")
        for k, (verdict, column) in enumerate(zip(review.VERDICTS, st.columns(len(review.VERDICTS)), strict=True)):
            column.form_submit_button(verdict, shortcut=str(k + 1), width="stretch", on_click=_judge, kwargs=dict(
                at_key=at_key, form_key=form_key, project=project, evaluation_id=evaluation_id,
                item_id=item.item_id, verdict=verdict, after=step.after_verdict_id))


def _review_stream(step: stream.StreamStep, at_key: str, *, project: Project, evaluation_id: int,
                   can_review: bool) -> None:
    st.progress(step.reviewed_by_you / step.total if step.total else 1.0, text=esc(step.progress()))
    if step.not_in_queue:
        st.warning(f"Item {esc(step.not_in_queue)} is not among these disagreements: showing the next one to "
                   "review.")
    if step.item is None:
        st.info("No disagreements here: student and teacher agree with the reference on every item.")
        return
    if step.done:
        st.success("You have judged every disagreement here.")
    keys = "1-4 record a verdict, ← and → move" if can_review and not step.item.your_verdict else "← and → move"
    st.caption(f"Item {step.position:,} of {step.total:,}. Keys: {keys}.")
    _show_item(step.item)
    left, right = st.columns(2)
    left.button("Previous", shortcut="Left", on_click=_go, args=(at_key, step.previous_id),
                disabled=step.previous_id is None, width="stretch")
    right.button("Next", shortcut="Right", on_click=_go, args=(at_key, step.next_id),
                 disabled=step.next_id is None, width="stretch")
    if step.item.your_verdict:
        st.info(f"Your verdict: {esc(step.item.your_verdict)} (verdicts are final).")
    elif can_review:
        _verdict_form(step, at_key, project=project, evaluation_id=evaluation_id)


user, project, _ = page_start(":material/rate_review: Review and sign off")
with db() as session:
    evals = evaluations.list_evaluations(session, project_id=project.id)

if not evals:
    st.info("No evaluation yet: the driver evaluates a student on the holdout first.")
    st.stop()

labels = {e.id: f"evaluation #{e.id} · round {e.round} · {'PASS' if e.passed else 'FAIL'} · "
                f"{short_hash(e.report_hash)}" for e in evals}
ids = [e.id for e in evals]
linked = str(st.query_params.get("evaluation", ""))  # a deep link names its evaluation; else the latest
ev_id = st.selectbox("Evaluation", ids, format_func=labels.get,
                     index=linked_index("evaluation", ids, default=len(ids) - 1))
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

st.subheader("Disagreements, one at a time")
with db() as session:
    preds = evaluations.load_predictions(session, evaluations.get_evaluation(session, project=project,
                                                                           evaluation_id=ev_id))
slice_cols = review.slice_columns(preds)
c1, c2 = st.columns(2)
col = c1.selectbox("Slice column", [None, *slice_cols], format_func=lambda c: "every slice" if c is None else c)
val = c2.selectbox("Value", review.slice_values(preds, col) if col else [], index=0 if col else None,
                   placeholder="every value (pick a slice column first)", disabled=col is None)
at_key = f"review_at_{ev_id}_{col}_{val}"  # where this validator stands in this stream
if at_key not in st.session_state and st.query_params.get("item") and linked in ("", str(ev_id)):  # a deep link
    st.session_state[at_key] = st.query_params.get("item")
with db() as session:
    step = act(lambda: stream.review_stream(session, actor=user, project=project, evaluation_id=ev_id,
                                            at=st.session_state.get(at_key), slice=(col, val) if col else None,
                                            predictions=preds))
if step is not None:
    _review_stream(step, at_key, project=project, evaluation_id=ev_id, can_review=can_review)
with db() as session:
    queue = act(lambda: review.disagreement_queue(session, project=project, evaluation_id=ev_id,
                                                  slice=(col, val) if col else None, limit=200,
                                                  predictions=preds))
    mine = {v.item_id: v.verdict for v in review.my_verdicts(session, actor=user, evaluation_id=ev_id)}
if queue is not None:
    st.caption(f"{stream.counted(queue.total, 'example')} where student and teacher differ or either misses the "
               "reference; critical slices and severe classes first.")
    with st.expander(f"The whole queue (first {min(len(queue.items), 200):,})"):
        table(queue.items.assign(your_verdict=[mine.get(i, "") for i in queue.items["id"].astype(str)])[
            ["id", "text", "reference", "teacher_label", "student_label", "student_confidence", "critical_slice",
             "severe_class", "your_verdict"]], hide_index=True, width="stretch")
with db() as session:
    pairs = review.agreement(session, evaluation_id=ev_id, viewer=user)
    rated = review.ratings(session, evaluation_id=ev_id, viewer=user)
    curve = review.evaluation_curve(session, project=project, evaluation_id=ev_id, predictions=preds, report=report)
    signed = review.sign_offs(session, evaluation_id=ev_id)
    proposals = review.threshold_proposals(session, evaluation_id=ev_id)
    no_confidence = review.missing_confidence(session, project=project, evaluation=evaluations.get_evaluation(
        session, project=project, evaluation_id=ev_id), predictions=preds)
if rated.n:
    st.metric("Human rating of the student's answers", f"{rated.mean:.2f} / 5",
              help=f"{rated.n} ratings: " + ", ".join(f"{k}: {v}" for k, v in rated.counts.items()))
if step is not None and step.coverage:
    table(pd.DataFrame([{"Critical slice": f"{c.column}={c.value}", "Reviewed": c.reviewed, "Required": c.required}
                        for c in step.coverage]), hide_index=True)
if pairs:
    table(pd.DataFrame([{"Validators": f"{p.validator_a} / {p.validator_b}", "Shared items": p.n_items,
                                "Cohen's kappa": p.kappa} for p in pairs]), hide_index=True)

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
               + (f", {stream.counted(len(proposals) - 1, 'earlier proposal')}." if len(proposals) > 1 else "."),
               icon=":material/tune:")
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
    outcome = ":material/check_circle: approved" if s.approve else ":material/cancel: rejected"
    st.markdown(f"- {outcome} {s.created_at:%Y-%m-%d %H:%M} UTC, hash "
                f"`{short_hash(s.evaluation_hash)}`" + (f": {esc(s.comment)}" if s.comment else ""))
student_latency = report.latency.student_figures
with st.form("signoff"):  # nothing preselected; keyed on the sign-offs, so the comment empties after one
    choice = st.radio("Your sign-off", ["approve", "reject"], horizontal=True, index=None,
                      key=f"signoff_choice_{ev_id}_{len(signed)}")
    comment = st.text_area("Comment (required to reject)", key=f"signoff_comment_{ev_id}_{len(signed)}")
    covers = False
    if student_latency.source == "declared":
        st.warning(f"The student's latency was {esc(student_latency.describe())}.")
        covers = st.checkbox("My approval also covers the declared latency figures")
    if st.form_submit_button(f"Sign off evaluation #{ev_id}", type="primary", disabled=not can_review):
        with db() as session:
            act(lambda: review.sign_off(session, actor=require_user(session), project=project, evaluation_id=ev_id,
                                        approve=None if choice is None else choice == "approve",
                                        comment=comment,
                                        covers_declared_latency=covers),
                lambda s: f"Evaluation #{ev_id} {'approved' if s.approve else 'rejected'}; the sign-off names "
                          f"{s.evaluation_hash[:16]}.", rerun=True)
