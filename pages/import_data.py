"""Driver, step 3: production inputs in, each version's ids out, duplicates found and dropped."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data import datasets, dedup, importer
from core.data.similarity import DEFAULT_THRESHOLD
from pages._datapages import data_page, dataset_names
from pages._show import table
from pages._ui import act, comma_list, db, option_index, require_user

project, is_driver, all_sets = data_page(":material/upload_file: Import data")
names = dataset_names(all_sets)
tab_import, tab_sets = st.tabs(["Import", "Datasets and duplicates"], key="data_tab")

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

            with st.form("mapping"):
                c1, c2, c3, c4 = st.columns(4)
                id_col = c1.selectbox("Id column", cols, index=option_index(cols, pv.suggested.get("id")))
                text_col = c2.selectbox("Input text column", cols, index=option_index(cols, pv.suggested.get("text")))
                ref_col = c3.selectbox("Reference answer (optional)", none,
                                       index=option_index(none, pv.suggested.get("reference")))
                ts_col = c4.selectbox("Timestamp (optional)", none,
                                      index=option_index(none, pv.suggested.get("timestamp")))
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
        if st.button("Find duplicates", icon=":material/search:"):
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
