"""Operator, after the ship decision: the staged rollout behind its safety net, live traffic, drift, and
re-distillation when traffic moves away from what the student learned."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.access import tokens
from core.access.projects import roles_of
from core.domain.display import number, tidy, time_bucket
from core.domain.roles import Role
from core.rollout import config as mconfig
from core.rollout import drift, fallback, logs, redistill, rollout
from core.serving import howto
from pages._show import esc, table
from pages._ui import act, comma_list, current_project, db, require_user, show_flash

st.title(":material/traffic: Rollout and monitoring")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_operator = Role.OPERATOR in roles_of(session, project_id=project.id, user_id=user.id)
    state = rollout.state(session, project_id=project.id)
    events = rollout.history(session, project_id=project.id)
    stage_list = rollout.stages(session, project_id=project.id)
    settings = mconfig.get_config(session, project_id=project.id)
    live = logs.read_requests(project.id)  # read once: the advance check, the charts and drift use it
    check = rollout.check_advance(session, project_id=project.id, live=live) if state.stage != rollout.OFF else None
    requests_ = list(reversed(redistill.list_redistill(session, project.id)))
    target = act(lambda: rollout.fallback_target(session, project_id=project.id))
# A file teacher's student starts only once its operator chose what answers behind it: core's sentence, shown.
start_refusal = (fallback.refusal(target, project=project, doing="start its rollout")
                 if state.stage == rollout.OFF else None)

st.caption(f"Project: {esc(project.name)}. Shadow first; each stage advances only on what the logged traffic "
           "shows; the teacher answers below the confidence threshold and for must-escalate answers.")
if not is_operator:
    st.info(f"Only an operator of {esc(project.name)} starts, advances or rolls back; you can look.")

c1, c2, c3, c4 = st.columns(4)
c1.metric("Stage", state.stage if state.stage in (rollout.OFF, "shadow") else f"{state.percent} %")
c2.metric("Fallback threshold", number(state.threshold, digits=2) if state.stage != rollout.OFF else "-")
c3.metric("Teacher sampled", f"{state.teacher_sample_rate:.0%}")
c4.metric("Must escalate", ", ".join(state.must_escalate) or "none")
st.caption("Stages: " + " → ".join(stage_list) + ".")

if target is not None:
    (st.caption if target.ready else st.warning)(f"Fallback target: {esc(target.sentence())}")

if check is not None:
    st.markdown(f"**Advance from {check.stage} to {check.next_stage or '(last stage)'}**: "
                f"{check.n_requests:,} requests logged at this stage")
    shown = ("name", "status", "value", "threshold", "n", "detail")
    table(tidy([{k: c.as_dict()[k] for k in shown} for c in check.criteria]), hide_index=True, width="stretch")

# Only the actions the current stage allows, so the form never offers a second start; keyed on the stage so
# the choice starts afresh after each step.
with st.form(f"rollout_{state.stage}"):
    action = st.radio("Action", rollout.actions(state.stage, stage_list), horizontal=True, format_func={
        "start": "Start in shadow", "advance": "Advance one stage", "rollback": "Roll back"}.get)
    reason = st.text_input("Reason" + (" (required to roll back)" if state.stage != rollout.OFF else ""))
    if start_refusal is not None:
        st.caption(f"Start is disabled until a fallback target is chosen (below). {esc(start_refusal)}")
    if st.form_submit_button("Apply", type="primary", disabled=not is_operator or start_refusal is not None):
        with db() as session:
            actor = require_user(session)
            do = {"start": rollout.start, "advance": rollout.advance, "rollback": rollout.rollback}[action]
            act(lambda: do(session, actor=actor, project=project, reason=reason),
                lambda e: f"Rollout {e.action}: now at stage {e.stage}.", rerun=True)
if events:
    table(tidy([{"When (UTC)": f"{e.created_at:%Y-%m-%d %H:%M}", "Action": e.action,
                        "Stage": e.stage, "Threshold": e.threshold, "Reason": e.reason}
                       for e in reversed(events)]), hide_index=True, width="stretch")

if target is not None and target.kind != fallback.TEACHER:
    st.subheader("Fallback target")
    st.caption("The student learned from a teacher that cannot answer live requests: choose what answers what "
               "the student does not, a chat endpoint on the admin's list or a person's queue.")
    with st.form("fallback_target"):
        kind = st.radio("Fallback target", [fallback.QUEUE, fallback.ENDPOINT], horizontal=True, index=None,
                        format_func={fallback.QUEUE: "A person's queue",
                                     fallback.ENDPOINT: "A live endpoint on the admin's list"}.get)
        c1, c2 = st.columns(2)
        endpoint = c1.text_input("Endpoint URL (for an endpoint)")
        model = c2.text_input("Model (for an endpoint)")
        if st.form_submit_button("Choose the fallback target", disabled=not is_operator):
            choice = {"kind": kind} if kind != fallback.ENDPOINT else {
                "kind": kind, "endpoint": endpoint.strip() or None, "model": model.strip() or None}
            with db() as session:
                act(lambda: fallback.choose(session, actor=require_user(session), project=project, choice=choice),
                    lambda c: f"Fallback target chosen: {c.kind}.", rerun=True)

st.subheader("Serving")
if target is not None and not target.ready:
    st.warning("`stillroom serve` refuses this project until a fallback target is chosen.")
st.markdown("Serve the shipped student behind the stage above (clients send a serving token):")
st.code(howto.serve_command(project.name), language="bash")
if is_operator:
    fresh = st.session_state.pop("serve_token_secret", None)
    if fresh:
        st.success("The new token is shown only now: copy it into the client's secret store.")
        st.code(fresh, language=None)
    with db() as session:
        serving_tokens = tokens.serve_tokens_for(session, actor=require_user(session), project=project)
    if serving_tokens:
        table(tidy([{"Token": t.id, "Name": t.name, "Prefix": t.prefix + "…", "Created (UTC)":
                     f"{t.created_at:%Y-%m-%d %H:%M}", "Revoked": f"{t.revoked_at:%Y-%m-%d %H:%M}"
                     if t.revoked_at else ""} for t in serving_tokens]), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1.form("serve_token_create", clear_on_submit=True):
        name = st.text_input("New token for (the client that will use it)")
        if st.form_submit_button("Create serving token"):
            with db() as session:
                actor = require_user(session)
                made = act(lambda: tokens.create_serve_token(session, actor=actor, project=project, name=name))
            if made is not None:
                st.session_state["serve_token_secret"] = made.secret
                st.rerun()
    live_tokens = {t.id: f"#{t.id} {t.name}" for t in serving_tokens if t.revoked_at is None}
    with c2.form("serve_token_revoke"):
        victim = st.selectbox("Token to revoke", list(live_tokens), format_func=live_tokens.get, index=None,
                              placeholder="choose a token")
        revoke = st.form_submit_button("Revoke", disabled=not live_tokens)
    if revoke and victim is None:
        c2.error("Choose the token to revoke first.")
    elif revoke:
        with db() as session:
            actor = require_user(session)
            act(lambda: tokens.revoke_serve_token(session, actor=actor, project=project, token_id=victim),
                lambda row: f"Serving token #{row.id} revoked: the service refuses it within seconds.", rerun=True)
    st.markdown(f"Then call it (the token in `${howto.TOKEN_VARIABLE}`):")
    st.code(howto.curl_example(), language="bash")

st.subheader("Live traffic")
if live.empty:
    st.info("No request logged yet: start the rollout and serve the student.")
else:
    freq = time_bucket(live["ts"].min(), live["ts"].max())  # the axis follows the span of the data
    summary = logs.traffic_summary(live, freq, threshold=state.threshold, must_escalate=state.must_escalate)
    o = summary.overall
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Requests", f"{o.get('requests', 0):,}")
    m2.metric("Fallback rate", f"{o['fallback_rate']:.1%}" if o.get("fallback_rate") is not None else "n/a")
    m3.metric("p95 latency", f"{o['p95_ms']:.1f} ms" if o.get("p95_ms") is not None else "n/a")
    m4.metric("Sampled agreement", f"{o['agreement']:.1%}" if o.get("agreement") is not None else "n/a")
    t = summary.over_time
    fig = make_subplots(rows=2, cols=2, subplot_titles=("requests", "fallback rate", "latency (ms)",
                                                        "sampled agreement with the teacher"))
    fig.add_trace(go.Bar(x=t["bucket"], y=t["requests"], name="requests"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t["bucket"], y=t["fallback_rate"], name="fallback rate"), row=1, col=2)
    fig.add_trace(go.Scatter(x=t["bucket"], y=t["p50_ms"], name="p50"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t["bucket"], y=t["p95_ms"], name="p95"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t["bucket"], y=t["agreement"], name="agreement"), row=2, col=2)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)  # a rate: never below 0
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=2, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=2, col=1)
    fig.update_layout(height=520, showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Per {freq} bucket")
    st.plotly_chart(fig, width="stretch")
    c1, c2 = st.columns(2)
    conf = summary.confidence
    fig = go.Figure(go.Bar(x=(conf["bin_left"] + conf["bin_right"]) / 2, y=conf["requests"], width=0.045))
    fig.add_vline(x=state.threshold, line_dash="dot")
    fig.update_layout(title="Student confidence", height=300, margin=dict(l=10, r=10, t=40, b=10))
    c1.plotly_chart(fig, width="stretch")
    if not summary.slices.empty:
        c2.markdown("**Sampled agreement per slice, all logged traffic** (every stage; the advance check above "
                    "judges this stage's requests only)")
        table(tidy(summary.slices), where=c2, hide_index=True, width="stretch")
    per_slice = logs.slice_agreement_over_time(live, freq)
    if not per_slice.empty:
        fig = go.Figure([go.Scatter(x=part["bucket"], y=part["agreement"], mode="lines+markers", name=name,
                                    customdata=part["asked"], hovertemplate="%{y:.1%} of %{customdata} asked")
                         for name, part in per_slice.groupby("slice", sort=True)])
        fig.update_layout(title="Sampled agreement per slice, over time", height=340, yaxis={"range": [0, 1.02]},
                          margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch")

st.subheader("Drift against the training data")
with db() as session:
    report = act(lambda: drift.drift_report(session, project_id=project.id, live=live))
if report is not None and report.features:
    st.caption(f"PSI warns at {report.psi_warn:g} and alerts at {report.psi_alert:g}; reference: "
               f"{esc(report.reference)}; {report.n_live:,} live requests.")
    table(tidy([{"Feature": f.feature, "PSI": f.psi, "Jensen-Shannon": f.js,
                        "Status": f.status, "Live n": f.n_live} for f in report.features]),
                 hide_index=True, width="stretch")
    worst = report.worst()
    if worst is not None and worst.bins:
        bins = pd.DataFrame(worst.bins)
        fig = go.Figure([go.Bar(name="training", x=bins["bin"], y=bins["reference_share"]),
                         go.Bar(name="live", x=bins["bin"], y=bins["live_share"])])
        fig.update_layout(barmode="group", title=f"{worst.feature}: training against live", height=300,
                          margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch")
elif report is not None:
    st.caption("No drift figures yet: they need a shipped evaluation and logged traffic.")

with st.form("redistill"):
    st.markdown("**Re-distill**: open a new round whose data request is drawn from the drifted traffic")
    why = st.text_input("Why")
    if st.form_submit_button("Open a re-distillation round", disabled=not is_operator):
        with db() as session:
            act(lambda: redistill.open_redistill(session, actor=require_user(session), project=project, reason=why),
                lambda r: f"Re-distillation request #{r.id} opened; the driver sees it.", rerun=True)
for r in requests_:
    st.markdown(f"- Request #{r.id}, {r.created_at:%Y-%m-%d}: {esc(r.reason)}")

with st.expander("Monitoring settings"):
    with st.form("settings"):
        c1, c2, c3 = st.columns(3)
        warn = c1.number_input("PSI warn", value=float(settings.psi_warn), step=0.05)
        alert = c2.number_input("PSI alert", value=float(settings.psi_alert), step=0.05)
        sample = c3.number_input("Teacher sample rate", value=float(settings.teacher_sample_rate), step=0.01)
        escalate = st.text_input("Must-escalate labels (comma-separated; blank = the gate's severe classes)",
                                 value=", ".join(settings.must_escalate or []))
        if st.form_submit_button("Save settings", disabled=not is_operator):
            changes = {"psi_warn": warn, "psi_alert": alert, "teacher_sample_rate": sample,
                       "must_escalate": comma_list(escalate) or None}
            with db() as session:
                act(lambda: mconfig.set_config(session, actor=require_user(session), project=project,
                                               changes=changes), "Monitoring settings saved.", rerun=True)
