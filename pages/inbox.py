"""The person's inbox: work that became theirs, newest first, each a link to the page that does it; admins also
manage the webhooks that post the same notifications elsewhere."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import projects
from core.notify import inbox, webhooks
from core.notify.rules import Kind
from pages._show import esc, table
from pages._ui import act, db, require_user, show_flash

with db() as session:
    user = require_user(session)
    items = inbox.inbox(session, viewer=user, unread_only=st.session_state.get("inbox_unread_only", False))
    unread = inbox.unread_count(session, viewer=user)
    names = {p.id: p.name for p in projects.projects_for(session, user=user)}

st.title(":material/inbox: Inbox" + (f" · {unread} unread" if unread else ""))
show_flash()
left, right = st.columns([3, 1])
left.toggle("Unread only", key="inbox_unread_only")
if unread and right.button("Mark all read", icon=":material/done_all:"):
    with db() as session:
        act(lambda: inbox.mark_all_read(session, viewer=user), lambda n: f"{n} marked read.", rerun=True)

if not items:
    st.caption("Nothing here: you are told when an evaluation, a sign-off, a decision, a rollout stage, "
               "drift or one of your jobs needs you.")
for item in items:
    with st.container(border=True):
        text, side = st.columns([5, 1])
        weight = "" if item.read else "**"
        text.markdown(f"{weight}{esc(item.text)}{weight}  \n"
                      f"[Open]({item.link.query}) · {esc(names.get(item.project_id, ''))} · "
                      f"{item.created_at:%Y-%m-%d %H:%M} UTC")
        if not item.read and side.button("Mark read", key=f"read_{item.id}", icon=":material/done:"):
            with db() as session:
                act(lambda i=item.id: inbox.mark_read(session, viewer=user, notification_id=i), rerun=True)

if user.is_admin:
    st.divider()
    st.subheader("Webhooks")
    st.caption("Notifications posted as Slack-compatible JSON to URLs on STILLROOM_WEBHOOK_URLS (set by whoever "
               "runs the server); a failed post is retried with backoff and every try is logged. URLs are shown "
               "by host and fingerprint only: they may carry a secret.")
    with db() as session:
        subs = webhooks.subscriptions(session, actor=user)
    if subs:
        table(pd.DataFrame([{"ID": s.id, "URL": s.shown, "Kinds": ", ".join(s.kinds),
                             "Project": names.get(s.project_id, "all") if s.project_id else "all",
                             "Delivered": s.delivered, "Failed": s.failed, "Pending": s.pending} for s in subs]),
              hide_index=True, width="stretch")
    with st.form("webhook_add", clear_on_submit=True):
        url = st.text_input("Webhook URL", type="password", help="Exactly as listed in STILLROOM_WEBHOOK_URLS.")
        kinds = st.multiselect("Kinds (none: every kind)", [k.value for k in Kind])
        scope = st.selectbox("Project", [None, *names], format_func=lambda p: "every project" if p is None
                             else names[p])
        added = st.form_submit_button("Add webhook", type="primary")
    if added:
        with db() as session:
            act(lambda: webhooks.add(session, actor=user, url=url, kinds=kinds,
                                     project=projects.get_project(session, scope) if scope else None),
                lambda row: f"Webhook #{row.id} added: {row.shown}.", rerun=True)
    if subs:
        with st.form("webhook_remove"):
            gone = st.selectbox("Remove a webhook", [s.id for s in subs],
                                format_func=lambda i: next(f"#{s.id} {s.shown}" for s in subs if s.id == i))
            removed = st.form_submit_button("Remove")
        if removed:
            with db() as session:
                act(lambda: webhooks.remove(session, actor=user, subscription_id=gone),
                    lambda row: f"Webhook #{row.id} removed.", rerun=True)
