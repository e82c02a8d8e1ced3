"""Driver, step 4: distil students from the teacher's outputs, as jobs, under the locked gate."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.access import session as app_db
from core.access.projects import roles_of
from core.domain.display import tidy
from core.domain.roles import Role
from core.gate import gate
from core.ml.config import FAMILIES, TrainConfig, student_sizes
from core.rollout import fallback
from core.teacher import filter as tfilter
from core.teacher import runs as teacher_runs
from core.training import runs, search
from pages._show import esc, table
from pages._ui import act, current_project, db, job_panel, require_user, show_flash

st.title(":material/model_training: Train students")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_driver = Role.DRIVER in roles_of(session, project_id=project.id, user_id=user.id)
    locked = gate.current(session, project_id=project.id)
    t_runs = teacher_runs.list_runs(session, project_id=project.id)
    filters = tfilter.list_filters(session, project_id=project.id)
    comparison = runs.compare_runs(session, project_id=project.id)
    training = runs.list_runs(session, project_id=project.id)
    last_search = search.latest_search(session, project_id=project.id)
    recommendation = search.search_recommendation(session, job=last_search) if last_search else None

st.caption(f"Project: {esc(project.name)}. Students learn the teacher's distribution (soft labels) and the "
           "reference where there is one; the holdout is never trained on.")
if locked is None:
    st.warning("The gate is not locked: training is refused until the sponsor locks it.", icon=":material/lock:")
else:
    st.caption(f"Training runs under gate v{locked.version} ({locked.content_hash[:12]}…).")
if not is_driver:
    st.info(f"Only a driver of {esc(project.name)} trains its students; you can look.")

for r in training:
    if r.job_id and r.status in ("queued", "running"):
        job_panel(r.job_id, label=f"Training run #{r.id} ({r.family} {r.size})")

defaults = TrainConfig()
with st.expander("Start a training run", expanded=not training):
    if not t_runs:
        st.info("Run the teacher first (Teacher page).")
    else:
        names = {r.id: f"run #{r.id} · {r.adapter} · {r.n_rows:,} outputs" for r in t_runs}
        t_id = st.selectbox("Teacher run", [r.id for r in t_runs], format_func=names.get, index=len(t_runs) - 1)
        if not fallback.answers_live(next(r.adapter for r in t_runs if r.id == t_id)):
            st.caption(f":material/warning: {fallback.FILE_TEACHER_CAPTION}")
        mine = [f for f in filters if f.teacher_run_id == t_id]
        f_id = st.selectbox("Filtered outputs", [None] + [f.id for f in mine], format_func=lambda i: (
            "all readable outputs" if i is None else
            f"filter #{i}: {next(f for f in mine if f.id == i).counts['kept']:,} kept"),
            index=1 if mine else 0)
        st.markdown("**Default: both families.** A small search over each family's key settings, cheapest "
                    "first, within a time budget; each run stops when validation agreement with the teacher stops "
                    "rising. Stillroom then recommends one, with its reasons.")
        budget = st.number_input("Time budget (seconds)", min_value=60, max_value=7 * 86_400, step=60,
                                 value=int(app_db.settings().train_budget_s))
        student_init = st.text_input(
            "Student starts from (encoder directory)", placeholder="optional: /models/minilm-l6",
            help="A pretrained encoder your team has (BERT, DistilBERT, MiniLM...) with its tokenizer: the search "
                 "tries a student that is this encoder with a new head; one run uses it with size 'pretrained'.")
        if st.button("Search both families", type="primary", disabled=not is_driver):
            with db() as session:
                queued = act(lambda: search.start_search(session, actor=require_user(session), project=project,
                                                         teacher_run_id=t_id, filter_id=f_id, budget_s=budget,
                                                         student_init=student_init))
            if queued is not None:
                app_db.start_job(queued.id)
                st.session_state["flash"] = f"Search started as job #{queued.id}."
                st.rerun()
        st.markdown("**Or one run** of a family and size you choose:")
        family = st.radio("Family", FAMILIES, horizontal=True, format_func={
            "transformer": "small transformer", "ngram": "hashed word and character n-grams (fastest)"}.get)
        sizes = student_sizes(family)
        with st.form("train"):
            c1, c2, c3, c4 = st.columns(4)
            size = c1.selectbox("Size", sizes)
            epochs = c2.number_input("Epochs (at most)", min_value=1, max_value=200, value=defaults.epochs)
            temperature = c3.number_input("Temperature T", min_value=0.1, max_value=50.0,
                                          value=defaults.temperature, step=0.5)
            alpha = c4.slider("α (weight of the KD term)", 0.0, 1.0, defaults.alpha, 0.05)
            c5, c6, c7 = st.columns(3)
            patience = c5.number_input("Early-stopping patience", min_value=1, max_value=100,
                                       value=defaults.patience)
            val_fraction = c6.number_input("Validation share (not the holdout)", min_value=0.01, max_value=0.5,
                                           value=defaults.val_fraction, step=0.05)
            seed = c7.number_input("Seed", min_value=0, value=defaults.seed)
            c8, c9 = st.columns(2)  # intermediate-layer distillation from a local transformers teacher
            hidden_weight = c8.number_input("Hidden-state weight", min_value=0.0, max_value=100.0,
                                            value=defaults.hidden_weight, step=0.5)
            attention_weight = c9.number_input("Attention weight", min_value=0.0, max_value=100.0,
                                               value=defaults.attention_weight, step=0.5)
            pretrain = st.checkbox("Pre-train on the project's texts first", value=defaults.domain_pretrain,
                                   disabled=family != "transformer", help="Masked-language modelling on the "
                                   "project's imported texts (the holdout left out), in a share of the time budget.")
            go_train = st.form_submit_button("Start training", type="primary", disabled=not is_driver)
        if go_train:
            config = {"family": family, "size": size, "epochs": int(epochs), "temperature": temperature,
                      "alpha": alpha, "patience": int(patience), "val_fraction": val_fraction, "seed": int(seed),
                      "hidden_weight": hidden_weight, "attention_weight": attention_weight,
                      **({"student_init": student_init} if student_init.strip() else {}),
                      **({"domain_pretrain": True} if pretrain else {})}
            with db() as session:
                started = act(lambda: runs.start_training(session, actor=require_user(session), project=project,
                                                          teacher_run_id=t_id, filter_id=f_id, config=config))
            if started is not None:
                app_db.start_job(started[1].id)
                st.session_state["flash"] = f"Training run #{started[0].id} started as job #{started[1].id}."
                st.rerun()

if last_search is not None:
    if last_search.status in ("queued", "running"):
        job_panel(last_search.id, label=f"Search #{last_search.id} over both families")
    st.subheader(f"Search #{last_search.id}: the candidates and the recommendation")
    if recommendation.run_id is not None:
        st.success(f"Recommended: run #{recommendation.run_id}: " + "; ".join(recommendation.reasons) + ".")
    elif last_search.status == "done":
        st.warning("No recommendation: " + "; ".join(recommendation.reasons) + ".")
    for line in recommendation.bought:
        st.info(esc(f"{line[0].upper()}{line[1:]}."), icon=":material/school:")
    if recommendation.budget_line:
        st.caption(esc(recommendation.budget_line + "." + "".join(f" {x}." for x in recommendation.skipped)))
    table(tidy([{
        "Run": c.run_id, "Family": c.family, "Size": c.kind, "Learning rate": c.lr, "Status": c.status,
        "Epochs": c.epochs_done, "Agreement with teacher (val)": c.val_agreement, "Accuracy (val)": c.val_accuracy,
        "Teacher accuracy kept": c.retained, "p95 ms (single)": c.single_p95_ms, "Parameters": c.params,
        "Seconds": c.seconds, "Started from": c.init or "", "Recommended": c.run_id == recommendation.run_id,
    } for c in recommendation.candidates]), hide_index=True, width="stretch", column_config={
        "Agreement with teacher (val)": st.column_config.NumberColumn(format="%.3f"),
        "Accuracy (val)": st.column_config.NumberColumn(format="%.3f"),
        "Teacher accuracy kept": st.column_config.NumberColumn(format="percent"),
        "p95 ms (single)": st.column_config.NumberColumn(format="%.2f"),
        "Seconds": st.column_config.NumberColumn(format="%.0f")})

if not comparison:
    st.info("No training runs yet.")
    st.stop()

st.subheader("Runs side by side")
table(tidy([{
    "Run": c.run_id, "Family": c.family, "Size": c.size, "Status": c.status, "Parameters": c.params,
    "Epochs": c.epochs_done, "Best epoch": c.best_epoch, "Agreement with teacher (val)": c.val_agreement,
    "Accuracy (val)": c.val_accuracy, "ms/example (batched)": c.ms_per_example, "p95 ms (single)": c.single_p95_ms,
    "Teacher run": c.teacher_run_id, "Gate": f"v{c.gate_version}" if c.gate_version else "",
    "Started from": c.started_from or "",
} for c in comparison]), hide_index=True, width="stretch", column_config={
    "Agreement with teacher (val)": st.column_config.NumberColumn(format="%.3f"),
    "Accuracy (val)": st.column_config.NumberColumn(format="%.3f"),
    "ms/example (batched)": st.column_config.NumberColumn(format="%.3f"),
    "p95 ms (single)": st.column_config.NumberColumn(format="%.2f")})

by_id = {r.id: r for r in training}
# Open on the run the search recommends (the one people will ship), else the newest.
opened = recommendation.run_id if recommendation is not None and recommendation.run_id in by_id else None
pick = st.selectbox("Loss curve of", list(by_id), format_func=lambda i: f"run #{i} ({by_id[i].family} "
                    f"{by_id[i].size}, {by_id[i].status})" + (", recommended" if i == opened else ""),
                    index=list(by_id).index(opened) if opened is not None else len(by_id) - 1)
with db() as session:
    curve = runs.loss_curve(session, run_id=pick)
if curve.empty:
    st.caption("No points yet: the first appear within the first epoch.")
else:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve["step"], y=curve["train_loss"], mode="lines", name="training loss"))
    val = curve.dropna(subset=["val_loss"])
    fig.add_trace(go.Scatter(x=val["step"], y=val["val_loss"], mode="lines+markers", name="validation loss"))
    fig.add_trace(go.Scatter(x=val["step"], y=val["val_agreement"], mode="lines+markers", yaxis="y2",
                             name="validation agreement with the teacher"))
    # Agreement is a share: a fixed 0-100 % axis in steps of 20 %, padded so a line at 100 % is not drawn on
    # the plot's edge, and a right margin wide enough for its title.
    fig.update_layout(title=f"Run #{pick}", height=360, margin=dict(l=10, r=70, t=40, b=10), xaxis_title="step",
                      yaxis_title="loss", yaxis2=dict(
                          title=dict(text="agreement", standoff=10), overlaying="y", side="right",
                          range=[0, 1.02], tick0=0, dtick=0.2, tickformat=".0%", automargin=True))
    st.plotly_chart(fig, width="stretch")
run = by_id[pick]
for missing in runs.never_predicted(run):
    st.warning(missing.sentence(run.id), icon=":material/warning:")
if run.status == "failed":
    st.error(f"Run #{run.id} failed after {run.epochs_done} epochs; it can resume from its last checkpoint.")
    if st.button("Resume from the last checkpoint", disabled=not is_driver):
        with db() as session:
            resumed = act(lambda: runs.resume_training(session, actor=require_user(session), run_id=run.id))
        if resumed is not None:
            app_db.start_job(resumed[1].id)
            st.rerun()
