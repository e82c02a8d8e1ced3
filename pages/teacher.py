"""Driver, step 3: run the teacher over the inputs, keep its full outputs, filter its errors by policy."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.access import session as app_db
from core.data import datasets
from core.domain.roles import Role
from core.rollout import fallback
from core.teacher import filter as tfilter
from core.teacher import runs
from pages._show import chart, esc, metric_row, table
from pages._ui import act, comma_list, db, job_panel, page_start, require_user, secret, start_job

user, project, is_driver = page_start(":material/school: Teacher", role=Role.DRIVER)
with db() as session:
    all_sets = datasets.list_datasets(session, project_id=project.id)
    teacher_runs = runs.list_runs(session, project_id=project.id)
    filters = tfilter.list_filters(session, project_id=project.id)
    open_jobs = app_db.open_jobs(session, project_id=project.id, kinds=(runs.JOB_KIND, "demo-setup"))
    running = runs.live_run_in_progress(session, project_id=project.id)

st.caption(f"Project: {esc(project.name)}. The teacher's full answers are kept: label, probabilities, raw text.")
if not is_driver:
    st.info(f"Only a driver of {esc(project.name)} runs and filters the teacher; you can look.")

for job in open_jobs:
    job_panel(job.id, label="Teacher run" if job.kind == runs.JOB_KIND else "Demo set-up")

prompt_sets = [d for d in all_sets if d.purpose == "prompts"]
set_names = {d.id: f"#{d.id} {d.name} ({d.n_rows:,} rows)" for d in all_sets}
run_names = {r.id: f"run #{r.id} · {r.adapter} · dataset #{r.dataset_id} · {r.n_rows:,} rows" for r in teacher_runs}
tab_run, tab_runs, tab_filter = st.tabs(["Run the teacher", "Runs", "Filter errors"], key="teacher_tab")

with tab_run:
    # While a live teacher run is queued or running, starting another is not offered (importing outputs is).
    can_start = is_driver and running is None
    if running is not None:
        st.info(f"The teacher is running (job #{running}, progress above): start another live run when it ends.")
    if not prompt_sets:
        st.info("Import inputs on the Import data page first.")
    else:
        ds_id = st.selectbox("Inputs", [d.id for d in prompt_sets], format_func=set_names.get,
                             index=len(prompt_sets) - 1)
        kind = st.radio("Teacher", ["local", "http", "python", "file"], horizontal=True, format_func={
            "local": "Local model directory", "http": "OpenAI-compatible endpoint",
            "python": "Python function (approved)", "file": "Outputs produced elsewhere"}.get,
            disabled=not is_driver)
        if kind == "local":
            engine = st.radio("Run the batches", ["in-process", "ray"], horizontal=True, format_func={
                "in-process": "In this process", "ray": "Across Ray workers (millions of inputs)"}.get)
            with st.form("local"):
                model_dir = st.text_input("Model directory (a saved transformers classifier)",
                                          value=runs.offered_model_dir())
                batch = st.number_input("Batch size", min_value=1, max_value=1024, value=64)
                config = {"model_dir": model_dir, "batch_size": int(batch)}
                if engine == "ray":  # core checks the address and that Ray is installed
                    c1, c2 = st.columns(2)
                    address = c1.text_input("Ray address", placeholder="empty: a local Ray instance; auto; "
                                                                        "ray://HOST:10001")
                    workers = c2.number_input("Ray workers (each loads the model once)", min_value=1, value=2)
                    config.update(engine="ray", ray_address=address.strip() or None, ray_workers=int(workers))
                if st.form_submit_button("Start teacher run", type="primary", disabled=not can_start):
                    with db() as session:
                        job = act(lambda: runs.start_run(session, actor=require_user(session), project=project,
                                                         dataset_id=ds_id, adapter="local", config=config))
                    start_job(job)
        elif kind == "python":
            with st.form("python"):
                # Only the callables the admin approved are offered (core checks again, at submit and at run).
                approved = app_db.settings().teacher_callables
                name = st.selectbox("Function (approved by the admin)", approved or [None],
                                    format_func=lambda c: c or "none approved: the admin sets "
                                                               "STILLROOM_TEACHER_CALLABLES")
                ds = next(d for d in prompt_sets if d.id == ds_id)
                labels = st.text_input("Labels it answers with", value=",".join(ds.mapping.get("labels") or []))
                batch = st.number_input("Batch size", min_value=1, max_value=100_000, value=64)
                if st.form_submit_button("Start teacher run", type="primary", disabled=not is_driver or not name):
                    with db() as session:
                        job = act(lambda: runs.start_run(session, actor=require_user(session), project=project,
                                                         dataset_id=ds_id, adapter="python", config={
                                                             "callable": name, "labels": comma_list(labels) or None,
                                                             "batch_size": int(batch)}))
                    start_job(job)
        elif kind == "http":
            with st.form("http"):
                c1, c2 = st.columns(2)
                # Only what the admin approved is offered (core refuses anything else anyway).
                approved = app_db.settings().teacher_endpoints
                base_url = c1.selectbox("Endpoint (approved by the admin)", approved or [None],
                                        format_func=lambda u: u or "none approved: the admin sets "
                                                                   "STILLROOM_TEACHER_ENDPOINTS")
                model = c2.text_input("Model")
                ds = next(d for d in prompt_sets if d.id == ds_id)
                labels = st.text_input("Labels the teacher chooses from", value=",".join(ds.mapping.get("labels")
                                                                                         or []))
                c3, c4, c5, c6 = st.columns(4)
                key_env = c3.selectbox("API key variable", app_db.settings().teacher_key_vars,
                                       help="The key is read from this environment variable or from Streamlit "
                                            "secrets (teacher_api_key); it is never stored. The admin lists the "
                                            "variables allowed in STILLROOM_TEACHER_KEY_VARS.")
                max_cost = c4.number_input("Budget cap ($)", min_value=0.0, value=10.0, step=1.0)
                price_in = c5.number_input("$ per 1k input tokens", min_value=0.0, value=0.0005, format="%.5f")
                price_out = c6.number_input("$ per 1k output tokens", min_value=0.0, value=0.0015, format="%.5f")
                concurrency = st.slider("Concurrent requests", 1, 32, 4)
                b1, b2 = st.columns(2)
                estimate = b1.form_submit_button("Estimate cost (dry run)")
                start = b2.form_submit_button("Start teacher run", type="primary", disabled=not can_start)
            config = {"base_url": base_url or None, "model": model, "api_key_env": key_env,
                      "labels": comma_list(labels) or None,
                      "max_cost": max_cost, "price_in_per_1k": price_in, "price_out_per_1k": price_out,
                      "concurrency": concurrency}
            if estimate:
                with db() as session:
                    est = act(lambda: runs.estimate_cost(session, project=project, dataset_id=ds_id, config=config))
                if est is not None:
                    (st.info if est.within_budget else st.warning)(est.sentence())
            if start:
                with db() as session:
                    job = act(lambda: runs.start_run(session, actor=require_user(session), project=project,
                                                     dataset_id=ds_id, adapter="http", config=config))
                if job is not None:
                    runs.start_detached(job.id, api_key=secret("teacher_api_key"), api_key_env=key_env)
                    st.rerun()
        else:
            upload = st.file_uploader("Teacher outputs (CSV, JSONL or Parquet: id, label, optional confidence, "
                                      "probs or prob_<label> columns, raw)", type=["csv", "jsonl", "parquet"],
                                      disabled=not is_driver)
            st.caption("The ids must be rows of the chosen dataset version; the Import data page offers each "
                       "version's ids as a CSV to download.")
            drop_foreign = st.checkbox("Drop rows whose id is not in this dataset (for example outputs made before "
                                       "deduplication); the count is recorded with the run", disabled=not is_driver)
            if upload is not None and st.button("Import outputs", type="primary", disabled=not is_driver):
                with db() as session:
                    act(lambda: runs.import_upload(session, actor=require_user(session), project=project,
                                                   dataset_id=ds_id, data=upload.getvalue(), filename=upload.name,
                                                   drop_foreign=drop_foreign),
                        runs.imported_sentence, rerun=True)

with tab_runs:
    if not teacher_runs:
        st.info("No teacher runs yet.")
    else:
        three_places = st.column_config.NumberColumn(format="%.3f")
        table(runs.runs_table(teacher_runs), hide_index=True, width="stretch",
              column_config={"Agrees with reference": three_places, "Mean confidence": three_places})
        pick = st.selectbox("Look at", [r.id for r in teacher_runs], format_func=run_names.get,
                            index=len(teacher_runs) - 1)
        if not fallback.answers_live(next(r.adapter for r in teacher_runs if r.id == pick)):
            st.caption(f":material/warning: {fallback.FILE_TEACHER_CAPTION}")
        with db() as session:
            summary = act(lambda: runs.summarize(session, run=runs.get_run(session, pick)))
        if summary is not None:
            agreement = summary.agreement_with_reference
            metric_row({"Outputs": f"{summary.n_rows:,}", "Unparseable": f"{summary.n_unparseable:,}",
                        "Agrees with reference": f"{agreement:.1%}" if agreement is not None else "n/a"})
            c1, c2 = st.columns(2)
            chart(go.Figure(go.Bar(x=list(summary.label_counts), y=list(summary.label_counts.values()))),
                  where=c1, title="Teacher's labels", height=300)
            chart(go.Figure(go.Bar(x=summary.confidence_ranges, y=summary.confidence_counts)),
                  where=c2, title="Teacher's confidence", height=300)
        if len(teacher_runs) > 1:
            with st.form("combine"):
                members = st.multiselect("Combine runs of one dataset", [r.id for r in teacher_runs],
                                         format_func=run_names.get)
                method = st.radio("By", ["mean", "vote"], horizontal=True,
                                  format_func={"mean": "averaged probabilities", "vote": "majority vote"}.get)
                if st.form_submit_button("Combine", disabled=not is_driver):
                    with db() as session:
                        act(lambda: runs.combine_runs(session, actor=require_user(session), project=project,
                                                      run_ids=members, method=method),
                            runs.combined_sentence, rerun=True)

with tab_filter:
    if not teacher_runs:
        st.info("Run the teacher first.")
    else:
        with st.form("filter"):
            run_id = st.selectbox("Filter run", [r.id for r in teacher_runs], format_func=run_names.get,
                                  index=len(teacher_runs) - 1)
            use_conf = st.checkbox("Drop answers below a confidence threshold", value=True)
            threshold = st.slider("Confidence threshold", 0.0, 1.0, 0.6, 0.05)
            disagree = st.checkbox("Drop answers the reference contradicts", value=True)
            if st.form_submit_button("Apply filter", type="primary", disabled=not is_driver):
                with db() as session:
                    act(lambda: tfilter.apply_filter(session, actor=require_user(session), project=project,
                                                     run_id=run_id, policy=tfilter.FilterPolicy(
                                                         min_confidence=threshold if use_conf else None,
                                                         drop_reference_disagreement=disagree)),
                        tfilter.kept_sentence, rerun=True)
        if filters:
            table(tfilter.filters_table(filters), hide_index=True, width="stretch")
            c1, c2 = st.columns(2)
            fid = c1.selectbox("See what a filter dropped", [f.id for f in filters],
                               format_func=lambda i: f"filter #{i}")
            reason = c2.selectbox("Reason", [None, *tfilter.REASONS],
                                  format_func=lambda r: "every reason" if r is None else tfilter.REASONS[r])
            with db() as session:
                dropped = act(lambda: tfilter.dropped_rows(session, filter_id=fid, reason=reason))
            if dropped is not None:
                st.caption(f"{len(dropped):,} rows dropped.")
                table(dropped.head(500), hide_index=True, width="stretch")
