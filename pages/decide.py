"""Sponsor, step 5: the evidence on one page, then ship, iterate or kill, recorded and audited."""

from __future__ import annotations

import streamlit as st

from core.access.projects import roles_of
from core.decision import decision, record
from core.domain.display import tidy
from core.domain.requests import read_data_request
from core.domain.roles import Role
from core.evaluation import rounds
from core.rollout import fallback
from pages._show import criteria_table, esc, short_hash, table
from pages._ui import act, current_project, db, require_user, show_flash

st.title(":material/balance: Decide")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_sponsor = Role.SPONSOR in roles_of(session, project_id=project.id, user_id=user.id)
    ev = act(lambda: decision.evidence(session, project=project))
    past = rounds.decisions(session, project_id=project.id)
    target = act(lambda: fallback.of_evaluation(session, evaluation_id=ev.evaluation.id)) if (
        ev is not None and ev.evaluation is not None) else None
if ev is None:
    st.stop()

st.caption(f"Project: {esc(project.name)} · round {ev.round}. The bar was locked before training; the evidence "
           "below cannot be rewritten.")
for d in past:
    st.markdown(f"- Round {d.round}: **{d.decision}** by the sponsor on {d.created_at:%Y-%m-%d}"
                + (f" (evaluation `{short_hash(d.evaluation_hash)}`)" if d.evaluation_hash else "")
                + f": {esc(d.rationale)}")
    request = read_data_request(d.data_request, decision_id=d.id)
    if request is not None:  # what the round asked the driver for, open on the page rather than folded JSON
        if request.slices:
            table(tidy([{"Slice": f"{w.column}={w.value}", "Status": w.status, "n": w.n,
                         "More examples": w.more_examples, "For": w.for_, "Why": w.why} for w in request.slices]),
                  hide_index=True, width="stretch")
        if request.failing_criteria:
            st.caption("Failing criteria: " + esc(", ".join(request.failing_criteria)) + ".")

if ev.evaluation is None:
    st.info(f"No evaluation in round {ev.round} yet: the driver evaluates a student on the holdout, then a "
            "validator reviews it." if ev.closed_by is None else "The decision named no evaluation.")
else:
    e = ev.evaluation
    (st.success if ev.passed else st.error)(
        f"Evaluation #{e.id} (hash `{short_hash(e.report_hash)}`): "
        + ("every criterion passes." if ev.passed else "the gate is not met."))
    criteria_table(ev.criteria)
    c1, c2, c3 = st.columns(3)
    approvals = [s for s in ev.sign_offs if s.approve]
    c1.metric("Validator approvals", len(approvals), help="Sign-offs that name this evaluation's hash.")
    c2.metric("Fallback threshold", f"{ev.threshold.threshold:.2f}" if ev.threshold else "none proposed")
    c3.metric("Payback", f"{ev.payback_months:.1f} months" if ev.payback_months else "n/a",
              help="Recomputed now from the student's measured cost and the proposed fallback rate.")
    if target is not None:  # what answers behind the student once it ships
        (st.info if target.ready else st.warning)(f"Fallback target: {esc(target.sentence())}")
    if ev.payback:
        st.caption(f"Payback window {ev.payback.criterion.status}: {esc(ev.payback.criterion.detail)}")
    if ev.targets:
        table(tidy([{"Target": t.name, "Measured": t.value, "Target value": t.target,
                            "Met": {True: "yes", False: "no", None: "n/a"}[t.met]} for t in ev.targets]),
                     hide_index=True)
    for blocker in ev.ship_blockers:
        st.warning(f"Ship is refused: {blocker}")
if len(ev.rounds) > 1:
    st.plotly_chart(record.rounds_figure(ev.rounds), width="stretch")
if ev.kill:
    st.error(f"Stillroom recommends kill: {ev.kill.reason}", icon=":material/dangerous:")

if ev.closed_by is not None:
    st.info(f"Round {ev.closed_by.round} was decided {ev.closed_by.decision}: that decision is final, and the "
            "evaluation shown is the one it named.")
    st.stop()
if not is_sponsor:
    st.info(f"Only a sponsor of {esc(project.name)} decides.")
    st.stop()
# Nothing is chosen for the sponsor; ship is offered only when nothing blocks it (core refuses it anyway).
blocked = bool(ev.ship_blockers)
choices = [c.value for c in rounds.Choice if not (blocked and c == rounds.Choice.SHIP)]
if blocked:
    st.caption("Ship is not offered while the blockers above stand.")
with st.form(f"decide_{ev.round}"):
    choice = st.radio("Decision", choices, horizontal=True, index=None, format_func={
        "ship": "Ship: roll out behind the safety net", "iterate": "Iterate: a new round with more data",
        "kill": "Kill: keep the teacher"}.get)
    rationale = st.text_area("Rationale")
    if st.form_submit_button("Record the decision", type="primary"):
        if choice is None:
            st.error("Choose a decision first: " + ", ".join(choices) + ".", icon=":material/block:")
            st.stop()
        with db() as session:
            act(lambda: decision.decide(session, actor=require_user(session), project=project, decision=choice,
                                        rationale=rationale,
                                        evaluation_id=ev.evaluation.id if ev.evaluation else None),
                lambda d: f"Round {d.round}: {d.decision} recorded.", rerun=True)
