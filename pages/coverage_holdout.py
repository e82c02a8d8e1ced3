"""Driver, step 3: coverage audited against the gate and production, the holdout fixed once."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.data import coverage as cov
from core.data import holdout, importer
from pages._datapages import data_page, dataset_names
from pages._show import esc, short_hash, table
from pages._ui import act, db, option_index, require_user

project, is_driver, all_sets = data_page(":material/donut_small: Coverage and holdout")
with db() as session:
    fixed = holdout.get_holdout(session, project_id=project.id)
names = dataset_names(all_sets)
prompt_sets = [d.id for d in all_sets if d.purpose == "prompts"]
tab_cov, tab_hold = st.tabs(["Coverage", "Holdout"], key="coverage_tab")

with tab_cov:
    if not prompt_sets:
        st.info("Import inputs to distil on first.")
    else:
        c1, c2 = st.columns(2)
        ds_id = c1.selectbox("Audit", prompt_sets, format_func=names.get, index=len(prompt_sets) - 1)
        prods = [None] + [d.id for d in all_sets if d.purpose == "production"]
        prod_id = c2.selectbox("Against the production log", prods, index=len(prods) - 1,
                               format_func=lambda i: names[i] if i is not None else
                               "(don't compare)" if len(prods) > 1 else "(none imported)")
        with db() as session:
            report = act(lambda: cov.coverage(session, project=project, dataset_id=ds_id, production_id=prod_id))
        if report is not None:
            if report.floors:
                st.markdown("**Slices the locked gate names** (rows outside the holdout against the minimum)")
                table(pd.DataFrame([{"Slice": f"{f.column}={f.value}", "Rows": f.count,
                                     "In holdout": f.in_holdout, "Minimum": f.min_n,
                                     "OK": "yes" if f.ok else f"short by {f.short_by:,}"}
                                    for f in report.floors]), hide_index=True, width="stretch")
            for sentence in report.missing:
                st.warning(sentence)
            if report.sparse:
                st.caption("Sparse slices (under 2 % of rows): " + ", ".join(
                    f"{esc(s.column)}={esc(s.value)} ({s.count:,})" for s in report.sparse))
            frame = report.shares_frame()
            for col in report.columns:
                part = frame[frame["column"] == col.column]
                title = f"{col.column}: share of rows" + (
                    f" · Jensen-Shannon distance to production {col.js_distance:.3f}"
                    if col.js_distance is not None else "")
                fig = px.bar(part, x="value", y="share", color="source", barmode="group", title=title,
                             hover_data=["count"], height=300)
                fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), yaxis_tickformat=".0%")
                st.plotly_chart(fig, width="stretch")
            if report.plan:
                st.markdown("**Oversampling offered** for critical slices under their minimum "
                            "(copies of rows outside the holdout; recorded as a new dataset version)")
                table(pd.DataFrame([{"Slice": f"{p.column}={p.value}", "Have": p.have, "Target": p.target,
                                     "Copies": p.copies} for p in report.plan]), hide_index=True)
                if st.button("Oversample", disabled=not is_driver):
                    with db() as session:
                        act(lambda: cov.apply_oversample(session, actor=require_user(session), project=project,
                                                         dataset_id=ds_id, plan=report.plan),
                            lambda d: f"Dataset #{d.id} {d.name!r} stored: {d.n_rows:,} rows.", rerun=True)

with tab_hold:
    if fixed is not None:
        st.success(f"Holdout fixed: {fixed.n_rows:,} rows from dataset #{fixed.dataset_id}, stratified by "
                   f"{', '.join(fixed.stratify_by) or 'nothing'}, seed {fixed.seed}, fingerprint "
                   f"`{short_hash(fixed.fingerprint)}`. It never changes (a later version only adds unseen rows); "
                   "training refuses rows that overlap it.",
                   icon=":material/lock:")
        with db() as session:
            later = holdout.versions(session, project_id=project.id)[1:]
        for v in later:
            st.caption(f"Holdout version {v.version}: {v.n_rows:,} rows (new rows from dataset #{v.dataset_id}), "
                       f"fingerprint `{short_hash(v.fingerprint)}`; evaluations from then on are scored on it.")
        fmt = st.selectbox("Export the holdout for a team predicting elsewhere", holdout.EXPORT_FORMATS,
                           help="Ids and inputs (and query_id for rankings), never references or slices; CSV cells "
                                "a spreadsheet would run get a leading quote.")
        with db() as session:
            exported = act(lambda: holdout.export_holdout(session, project=project, fmt=fmt))
        if exported is not None:
            st.download_button(f"Download the holdout ids and inputs ({fmt})", exported,
                               file_name=f"holdout-{project.id}.{fmt}", key="holdout_export")
        with st.form("holdout_extend"):
            st.markdown("**Extend the holdout** with newly imported rows (a new, fingerprinted version; never rows "
                        "a student may have trained on)")
            source = st.selectbox("Rows from", [d.id for d in all_sets], format_func=names.get,
                                  index=len(all_sets) - 1)
            why = st.text_input("Why the holdout grows", placeholder="the data request it answers")
            if st.form_submit_button("Add as a new holdout version", disabled=not is_driver):
                with db() as session:
                    act(lambda: holdout.extend_holdout(session, actor=require_user(session), project=project,
                                                       dataset_id=source, reason=why),
                        lambda v: f"Holdout version {v.version}: {v.n_rows:,} rows ({v.n_added:,} added), "
                                  f"fingerprint {v.fingerprint[:16]}.", rerun=True)
        if all_sets:
            check = st.selectbox("Check a dataset for overlap with the holdout", [d.id for d in all_sets],
                                 format_func=names.get, index=len(all_sets) - 1)
            if st.button("Check overlap"):
                with db() as session:
                    leak = act(lambda: holdout.dataset_leakage(session, project=project, dataset_id=check))
                st.session_state["leak_check"] = (check, leak)
            shown = st.session_state.get("leak_check")
            if shown and shown[0] == check and shown[1] is not None:
                leak = shown[1]
                (st.warning if leak.leaked else st.success)(leak.sentence())
                if leak.examples:
                    table(pd.DataFrame([vars(e) for e in leak.examples]), hide_index=True)
                if leak.leaked and st.button(f"Drop the {leak.leaked:,} overlapping rows", type="primary",
                                             disabled=not is_driver):
                    with db() as session:
                        act(lambda: holdout.drop_overlap(session, actor=require_user(session), project=project,
                                                         dataset_id=check)[0],
                            lambda d: f"Dataset #{d.id} {d.name!r} stored: {d.n_rows:,} rows; run the teacher "
                                      "on it before training.", rerun=True)
    elif not prompt_sets:
        st.info("Import inputs first; then fix the holdout, before any training.")
    else:
        st.info("Fix the holdout once, before any training: every evaluation is scored on these rows.")
        ds_id = st.selectbox("Draw it from", prompt_sets, format_func=names.get, index=len(prompt_sets) - 1)
        slice_cols = next(d for d in all_sets if d.id == ds_id).mapping.get("slices", [])
        with st.form("holdout"):
            c1, c2, c3 = st.columns(3)
            fraction = c1.number_input("Share of rows", min_value=0.01, max_value=0.5, value=0.2, step=0.05)
            by = c2.multiselect("Stratify by", slice_cols, default=slice_cols[:1])
            seed = c3.number_input("Seed", min_value=0, value=0, step=1)
            if st.form_submit_button("Fix the holdout", type="primary", disabled=not is_driver):
                with db() as session:
                    act(lambda: holdout.fix_holdout(session, actor=require_user(session), project=project,
                                                    dataset_id=ds_id, fraction=fraction, stratify_by=by,
                                                    seed=int(seed)),
                        lambda h: f"Holdout fixed: {h.n_rows:,} rows, fingerprint {h.fingerprint[:16]}.",
                        rerun=True)
    if fixed is None:
        with st.expander("Or make your own test split the holdout"):
            st.caption("Every row needs its answer; its ids may not be training rows' ids. It is fingerprinted, "
                       "stored apart from the training data, and checked for leakage against every training row.")
            upload = st.file_uploader("Test split (CSV, JSONL or Parquet)", type=["csv", "jsonl", "parquet"],
                                      key="holdout_upload")
            seen = None if upload is None else act(lambda: importer.preview(data=upload.getvalue(),
                                                                            filename=upload.name))
            if seen is not None:
                cols, guess = seen.columns, seen.suggested
                with st.form("holdout_import"):
                    c1, c2, c3 = st.columns(3)
                    id_col = c1.selectbox("Id column", cols, index=option_index(cols, guess.get("id")))
                    text_col = c2.selectbox("Text column", cols, index=option_index(cols, guess.get("text")))
                    ref_col = c3.selectbox("Answer (reference) column", cols,
                                           index=option_index(cols, guess.get("reference")))
                    slice_cols = st.multiselect("Slice columns", cols)
                    if st.form_submit_button("Import as the holdout", type="primary", disabled=not is_driver):
                        mapping = {"id": id_col, "text": text_col, "reference": ref_col, "slices": slice_cols}
                        with db() as session:
                            act(lambda: holdout.import_holdout(session, actor=require_user(session), project=project,
                                                               mapping=mapping, data=upload.getvalue(),
                                                               filename=upload.name),
                                lambda done: done.sentence(), rerun=True)
