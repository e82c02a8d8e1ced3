"""Driver, step 3: production inputs in, duplicates out, coverage audited, the holdout fixed once."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.access.projects import roles_of
from core.data import coverage as cov
from core.data import datasets, dedup, holdout, importer
from core.data.similarity import DEFAULT_THRESHOLD
from core.decision import requests as data_requests
from core.domain.roles import Role
from core.rollout import redistill
from pages._ui import act, comma_list, current_project, db, esc, require_user, short_hash, show_flash, table

st.title(":material/upload_file: Data")
show_flash()

with db() as session:
    user = require_user(session)
    project = current_project(session, user)
    is_driver = Role.DRIVER in roles_of(session, project_id=project.id, user_id=user.id)
    all_sets = datasets.list_datasets(session, project_id=project.id)
    fixed = holdout.get_holdout(session, project_id=project.id)
    redistill_requests = redistill.list_redistill(session, project.id)
    asked = data_requests.status(session, project=project)

st.caption(f"Project: {esc(project.name)}. Most of a distillation project's time goes here: real inputs, "
           "no duplicates, every critical slice covered, a holdout nobody trains on.")
if not is_driver:
    st.info(f"Only a driver of {esc(project.name)} imports and changes its data; you can look.")
for r in asked:  # the sponsor's latest iterate: what it asked for and what has come in
    (st.success if r.met else st.warning)(f"Data request: {esc(r.sentence())}")
for r in redistill_requests[-3:]:
    wanted = ", ".join(f"{s['column']}={s['value']} ({s.get('examples_wanted', '?')} examples)"
                       for s in r.drift.get("slices", []))
    st.warning(f"Re-distillation request #{r.id} from the operator ({r.created_at:%Y-%m-%d}): {esc(r.reason)}"
               + (f" Collect: {esc(wanted)}." if wanted else ""), icon="🔁")

names = {d.id: f"#{d.id} {d.name} ({d.purpose}, {d.n_rows:,} rows)" for d in all_sets}
prompt_sets = [d.id for d in all_sets if d.purpose == "prompts"]
tab_import, tab_sets, tab_cov, tab_hold = st.tabs(["Import", "Datasets and duplicates", "Coverage", "Holdout"],
                                                  key="data_tab")

with tab_import:
    upload = st.file_uploader("Production inputs (CSV, JSONL or Parquet)", type=["csv", "jsonl", "ndjson", "parquet"],
                              disabled=not is_driver)
    if upload is not None:
        data = upload.getvalue()
        pv = act(lambda: importer.preview(data=data, filename=upload.name))
        if pv is not None:
            st.caption(f"{pv.n_rows:,} rows, {len(pv.columns)} columns ({pv.format}); the first rows:")
            table(pv.rows, hide_index=True, width="stretch")
            cols = pv.columns
            none = ["(none)", *cols]

            def _at(options: list[str], guess: str | None) -> int:
                return options.index(guess) if guess in options else 0

            with st.form("mapping"):
                c1, c2, c3, c4 = st.columns(4)
                id_col = c1.selectbox("Id column", cols, index=_at(cols, pv.suggested.get("id")))
                text_col = c2.selectbox("Input text column", cols, index=_at(cols, pv.suggested.get("text")))
                ref_col = c3.selectbox("Reference answer (optional)", none,
                                       index=_at(none, pv.suggested.get("reference")))
                ts_col = c4.selectbox("Timestamp (optional)", none, index=_at(none, pv.suggested.get("timestamp")))
                # Every column is offered, whatever else is picked: options that change with the other
                # choices made Streamlit drop the slices chosen (core refuses a column mapped twice).
                slices = st.multiselect("Slice columns (queue, channel, tier, language…)", cols,
                                        key=f"slices_{upload.name}")
                labels = st.text_input("Allowed reference labels (comma-separated, optional)",
                                       help="Rows whose reference is not one of these are refused.")
                c5, c6 = st.columns(2)
                purpose = c5.radio("These rows are", ["prompts", "production"], horizontal=True,
                                   format_func={"prompts": "inputs to distil on",
                                                "production": "the production log (for coverage)"}.get)
                name = c6.text_input("Dataset name", value=upload.name.rsplit(".", 1)[0])
                go = st.form_submit_button("Import", type="primary")
            if go:
                mapping = {"id": id_col, "text": text_col, "slices": slices,
                           "reference": None if ref_col == "(none)" else ref_col,
                           "timestamp": None if ts_col == "(none)" else ts_col,
                           "labels": comma_list(labels) or None}
                with db() as session:
                    act(lambda: importer.import_dataset(session, actor=require_user(session), project=project,
                                                        mapping=mapping, data=data, filename=upload.name,
                                                        purpose=purpose, name=name),
                        lambda d: f"Dataset #{d.id} {d.name!r} imported: {d.n_rows:,} rows; "
                                  f"{datasets.describe_mapping(d.mapping)}.", rerun=True)

with tab_sets:
    if not all_sets:
        st.info("No data yet: import production inputs first.")
    else:
        table(pd.DataFrame([{
            "#": d.id, "Name": d.name, "Purpose": d.purpose, "How": d.operation, "Rows": d.n_rows,
            "From": f"#{d.parent_id}" if d.parent_id else "", "When (UTC)": f"{d.created_at:%Y-%m-%d %H:%M}",
        } for d in all_sets]), hide_index=True, width="stretch")
        pick = st.selectbox("Look for duplicates in", [d.id for d in all_sets], format_func=names.get,
                            index=len(all_sets) - 1)
        with db() as session:
            ids = act(lambda: datasets.ids_csv(session, project=project, dataset_id=pick))
        if ids is not None:
            st.download_button(f"Download the ids of dataset #{pick} (CSV)", ids, file_name=f"dataset-{pick}-ids.csv",
                               mime="text/csv", help="Match outputs made elsewhere to this version's rows.")
        threshold = st.slider("Near-duplicate similarity", dedup.MIN_THRESHOLD, dedup.MAX_THRESHOLD,
                              DEFAULT_THRESHOLD, 0.05, help="Share of shared words above which two texts count "
                              "as near duplicates.")
        if st.button("Find duplicates", icon="🔍"):
            with db() as session:
                st.session_state["dedup_preview"] = (pick, threshold, act(
                    lambda: dedup.preview_dedup(session, project=project, dataset_id=pick, threshold=threshold)))
        shown = st.session_state.get("dedup_preview")
        if shown and shown[0] == pick and shown[1] == threshold and shown[2] is not None:
            report = shown[2]
            m1, m2, m3 = st.columns(3)
            m1.metric("Exact duplicates", f"{report.exact:,}")
            m2.metric("Near duplicates", f"{report.near:,}")
            m3.metric("Rows kept", f"{report.kept:,}")
            if report.examples:
                st.markdown("**Examples of what would be dropped** (nothing is dropped until you confirm)")
                table(pd.DataFrame([{"Kind": e.kind, "Similarity": e.similarity, "Dropped id": e.dropped_id,
                                            "Dropped text": e.dropped_text, "Kept id": e.kept_id,
                                            "Kept text": e.kept_text} for e in report.examples]),
                             hide_index=True, width="stretch")
            if report.exact + report.near and st.button(f"Drop {report.exact + report.near:,} duplicates",
                                                        type="primary", disabled=not is_driver):
                with db() as session:
                    act(lambda: dedup.apply_dedup(session, actor=require_user(session), project=project,
                                                  dataset_id=pick, threshold=threshold)[0],
                        lambda d: f"Dataset #{d.id} {d.name!r} stored: {d.n_rows:,} rows.", rerun=True)

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
                                            "OK": "✅" if f.ok else f"short by {f.short_by:,}"}
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
                   icon="🔒")
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
                    table(pd.DataFrame([vars(e) for e in leak.examples]),
                                 hide_index=True)
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
            if upload is not None:
                data = upload.getvalue()
                seen = act(lambda: importer.preview(data=data, filename=upload.name))
                if seen is not None:
                    cols, guess = seen.columns, seen.suggested
                    with st.form("holdout_import"):
                        c1, c2, c3 = st.columns(3)
                        id_col = c1.selectbox("Id column", cols, index=cols.index(guess["id"])
                                              if guess.get("id") in cols else 0)
                        text_col = c2.selectbox("Text column", cols, index=cols.index(guess["text"])
                                                if guess.get("text") in cols else 0)
                        ref_col = c3.selectbox("Answer (reference) column", cols,
                                               index=cols.index(guess["reference"])
                                               if guess.get("reference") in cols else 0)
                        slice_cols = st.multiselect("Slice columns", cols)
                        if st.form_submit_button("Import as the holdout", type="primary", disabled=not is_driver):
                            mapping = {"id": id_col, "text": text_col, "reference": ref_col, "slices": slice_cols}
                            with db() as session:
                                act(lambda: holdout.import_holdout(session, actor=require_user(session),
                                                                   project=project, mapping=mapping, data=data,
                                                                   filename=upload.name),
                                    lambda done: done.sentence(), rerun=True)
