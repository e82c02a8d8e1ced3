"""The audit log: every state change as a link in a hash chain, and a check of the chain."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access.session import verify_record
from core.access.visibility import audit_scopes, visible_events
from core.domain.display import readable
from pages._show import esc, table
from pages._ui import db, require_user, visible_projects

st.title(":material/receipt_long: Audit log")
PAGE = 100

with db() as session:
    user = require_user(session)
    projects = visible_projects(session, user)
    scopes = audit_scopes(session, viewer=user)

if not scopes:
    st.info("You hold no role on any project, so there is no audit trail to show you.")
    st.stop()
names = {p.id: p.name for p in projects} | {None: "Everything (admin)"}
default = st.session_state.get("project_id")
c1, c2, c3 = st.columns([2, 2, 1])
scope = c1.selectbox("Events of", scopes, format_func=names.get,
                     index=scopes.index(default) if default in scopes else 0)
action = c2.text_input("Action filter", placeholder="e.g. gate.lock").strip() or None
page = c3.number_input("Page", min_value=1, value=1, step=1)

with db() as session:
    events, total = visible_events(session, viewer=user, project_id=scope, action=action, limit=PAGE,
                                   offset=(page - 1) * PAGE)

st.caption(f"{total} events; newest first. Blind review: another validator's verdict shows as \"verdict "
           "recorded\" until you have recorded your own on that item or a validator has approved the evaluation.")
if events and page == 1:
    last = events[0]
    st.markdown(f"Latest: **{esc(last.action)}** by {esc(last.actor)} at {last.ts[:19].replace('T', ' ')} UTC "
                f"(event #{last.id}, hash `{last.hash[:16]}`)")
table(pd.DataFrame([{
    "#": e.id, "When (UTC)": e.ts[:19].replace("T", " "), "Who": e.actor, "Action": e.action,
    "Entity": f"{e.entity} {e.entity_id}", "Details": readable(e.details), "Hash": e.hash[:16],
} for e in events]), hide_index=True, width="stretch")

st.subheader("Verify the audit record")
st.caption("Checks every link of the hash chain; the head hashes anchored at each gate lock, sign-off and decision; "
           "the checkpoint file kept outside the database; every recorded row against the event that wrote it; "
           "and every artifact file's SHA-256. It reports tail truncation, forged appends, deleted events, "
           "rewrites, and rows or files changed behind the app. The last lines say what it cannot detect.")
expected = st.text_input("Expected head hash (optional)", placeholder="a head quoted by a decision record").strip()
if st.button("Verify the audit chain", icon=":material/manage_search:"):
    report = verify_record(expect_head=expected or None)
    (st.success if report.ok else st.error)(report.sentence())
    for problem in report.problems[1:]:
        st.markdown(f"- {esc(problem)}")
    for limit in report.limits:
        st.caption(f"Cannot detect: {limit}")
