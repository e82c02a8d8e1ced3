"""Sponsor, step 1: qualify the trigger. Core assesses the answers; the sponsor records a verdict."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.access.projects import roles_of
from core.domain.economics import DEFAULT_STUDENT_COST_SHARE
from core.domain.errors import StillroomError
from core.domain.roles import Role
from core.qualify import qualification as qual
from core.qualify.qualification import MOVE_LABELS, BetterMove, MoveAnswer, Play, Recommendation
from pages._show import esc
from pages._ui import act, current_project, db, require_user, show_flash

PLAY_HELP = {
    Play.COST: "Cost pressure: the teacher's bill is the problem.",
    Play.LATENCY: "Latency: the teacher is too slow for the product.",
    Play.STABILITY: "Stability: the provider changes the teacher under you.",
    Play.SPECIALIZATION: "Specialization: a focused model should beat the generalist.",
}
ANSWER_LABELS = {
    MoveAnswer.RULED_OUT: "Ruled out: would not fix it",
    MoveAnswer.PARTLY: "Would help, not enough",
    MoveAnswer.WOULD_FIX: "Would likely fix it by itself",
}
VERDICT_LABELS = {
    Recommendation.PROCEED: "Proceed: distil a student",
    Recommendation.FIX_FIRST: "Fix something else first",
    Recommendation.DO_NOTHING: "Do nothing: keep the teacher",
}

st.title(":material/explore: Qualify the trigger")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_sponsor = Role.SPONSOR in roles_of(session, project_id=project.id, user_id=user.id)
    previous = qual.history(session, project_id=project.id)

st.caption(f"Project: {esc(project.name)}. Would a student pay for itself, and would a simpler fix win?")
last = previous[-1].inputs if previous else {}

if previous:
    latest = previous[-1]
    with st.container(border=True):
        st.markdown(f"**Recorded verdict (version {latest.version}): {esc(latest.verdict)}** · "
                    f"Stillroom recommended {esc(latest.recommendation)}"
                    + (f" · payback {latest.payback_months:.1f} months" if latest.payback_months else ""))
        for reason in latest.reasons:
            st.markdown(f"- {esc(reason)}")
        if latest.rationale:
            st.markdown(f"Rationale: {esc(latest.rationale)}")
if not is_sponsor:
    st.info(f"Only a sponsor of {esc(project.name)} records its qualification; you can read it here.")
    st.stop()

st.subheader("The trigger")
plays = list(Play)
play = st.selectbox("Play", plays, format_func=lambda p: PLAY_HELP[p],
                    index=plays.index(Play(last["play"])) if last else 0)
evidence = st.text_area("Evidence", value=last.get("evidence", ""),
                        placeholder="What shows the pain: a bill, a latency graph, an incident…")
scope = st.radio("Task scope", ["narrow", "broad"], horizontal=True,
                 index=["narrow", "broad"].index(last.get("task_scope", "narrow")),
                 help="A student imitates one narrow job well; a broad assistant poorly.")
c1, c2, c3 = st.columns(3)
volume = c1.number_input("Monthly volume (requests)", min_value=0, step=10_000,
                         value=int(last.get("monthly_volume", 1_000_000)))
teacher_cost = c2.number_input("Teacher cost per 1k requests ($)", min_value=0.0, step=0.5,
                               value=float(last.get("teacher_cost_per_1k", 2.0)))
student_cost = c3.number_input(f"Student cost per 1k ($, blank = {DEFAULT_STUDENT_COST_SHARE:.0%} of teacher)",
                               min_value=0.0, value=None, step=0.05, placeholder="estimate")
c4, c5, c6 = st.columns(3)
current_p95 = c4.number_input("Current p95 latency (ms)", min_value=0.0, step=10.0,
                              value=float(last.get("current_p95_ms", 800.0)))
target_p95 = c5.number_input("Target p95 latency (ms)", min_value=0.0, step=10.0,
                             value=float(last.get("target_p95_ms", 50.0)))
build_cost = c6.number_input("Build cost ($)", min_value=0.0, step=1000.0,
                             value=float(last.get("build_cost", 20_000.0)))

st.subheader("Would a better first move win?")
moves = {}
answers = list(MoveAnswer)
for move in BetterMove:
    prev = last.get("better_first_moves", {}).get(move.value, MoveAnswer.RULED_OUT.value)
    moves[move.value] = st.radio(MOVE_LABELS[move], answers, format_func=ANSWER_LABELS.get, horizontal=True,
                                 index=answers.index(MoveAnswer(prev)), key=f"move_{move.value}")

st.subheader("The teacher's terms")
third_party = st.checkbox("The teacher is a third-party service", value=bool(last.get("teacher_third_party", True)))
terms = None
if third_party:
    options = ["yes", "no", "unknown"]
    terms = st.radio("Do its terms permit training on its outputs?", options, horizontal=True,
                     index=options.index(last.get("terms_permit_training") or "unknown"))

inputs = {
    "play": play.value, "evidence": evidence, "task_scope": scope, "monthly_volume": int(volume),
    "teacher_cost_per_1k": teacher_cost, "current_p95_ms": current_p95, "target_p95_ms": target_p95,
    "better_first_moves": moves, "teacher_third_party": third_party, "terms_permit_training": terms,
    "build_cost": build_cost, "student_cost_per_1k": student_cost,
}

st.subheader("Stillroom's recommendation")
try:
    a = qual.assess(inputs)
except StillroomError as exc:
    st.warning(f"Complete the answers to see a recommendation: {exc}")
    st.stop()

box = {Recommendation.PROCEED: st.success, Recommendation.BLOCKED: st.error}.get(a.recommendation, st.warning)
box(f"**{a.recommendation.value}** — " + " ".join(esc(r) for r in a.reasons))
for w in a.warnings:
    st.caption(esc(w))
m1, m2, m3, m4 = st.columns(4)
m1.metric("Teacher, per month", f"${a.monthly_teacher_cost:,.0f}")
m2.metric("Student, per month", f"${a.monthly_student_cost:,.0f}")
m3.metric("Saving, per month", f"${a.monthly_saving:,.0f}")
m4.metric("Payback", f"{a.payback_months:.1f} months" if a.payback_months else "never")

if a.monthly_saving > 0:
    months = list(range(0, 25))
    curve = pd.DataFrame({"month": months, "net": [m * a.monthly_saving - build_cost for m in months]})
    fig = go.Figure(go.Scatter(x=curve["month"], y=curve["net"], mode="lines", name="net saving"))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title="Net saving after the build ($)", height=280, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="months after launch", yaxis_title="$")
    st.plotly_chart(fig, width="stretch")

with st.form("verdict"):
    verdicts = list(VERDICT_LABELS)
    default = verdicts.index(a.recommendation) if a.recommendation in verdicts else 1
    verdict = st.radio("Your verdict", verdicts, format_func=VERDICT_LABELS.get, index=default)
    rationale = st.text_area("Rationale (required when you overrule the recommendation)")
    record = st.form_submit_button("Record verdict", type="primary")

if record:
    with db() as session:
        user = require_user(session)
        act(lambda: qual.record(session, actor=user, project=project, inputs=inputs, verdict=verdict,
                                rationale=rationale),
            lambda q: f"Verdict recorded as version {q.version}: {q.verdict}.", rerun=True)
