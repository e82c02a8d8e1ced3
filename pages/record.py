"""The project's decision record, for anyone on it: Markdown or a self-contained HTML file with its charts."""

from __future__ import annotations

import re

import streamlit as st

from core.decision import record
from pages._show import esc
from pages._ui import act, current_project, db, require_user

st.title(":material/history_edu: Decision record")

with db() as session:
    user = require_user(session)
    project = current_project(session, user)

st.caption(f"Project: {esc(project.name)}. Trigger, gate versions, data audit, training runs, evaluations, "
           "reviews, sign-offs and decisions, ending with the audit chain's head hash so the record can be "
           "checked later.")
slug = re.sub(r"[^a-z0-9]+", "-", project.name.lower()).strip("-") or "project"
with db() as session:
    markdown = act(lambda: record.export(session, actor=user, project=project, fmt="md"))
    html = act(lambda: record.export(session, actor=user, project=project, fmt="html"))
if markdown is not None and html is not None:
    c1, c2 = st.columns(2)
    c1.download_button("Download Markdown", markdown, file_name=f"{slug}-decision-record.md", mime="text/markdown")
    c2.download_button("Download HTML (self-contained)", html, file_name=f"{slug}-decision-record.html",
                       mime="text/html")
    with st.expander("Preview", expanded=True):
        # Rendered, not shown as source: the record escapes every piece of user text itself, so a name that
        # looks like markup still reads as typed.
        st.markdown(markdown)
