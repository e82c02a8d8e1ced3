"""The person's own account: who they are, their roles, and a new password."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import people, projects
from pages._show import esc, table
from pages._ui import act, db, require_user

st.title(":material/person: My account")

with db() as session:
    user = require_user(session)
    mine = projects.projects_for(session, user=user)
    roster = projects.roster(session, project_ids=[p.id for p in mine])

st.markdown(f"**{esc(user.display_name)}** · `{user.username}`" + (" · admin" if user.is_admin else ""))
rows = [{"Project": p.name, "Your roles": ", ".join(r for r, names in roster.get(p.id, {}).items()
                                                   if user.username in names)} for p in mine]
if rows:
    table(pd.DataFrame(rows), hide_index=True, width="stretch")

with st.form("password", clear_on_submit=True):
    st.markdown("**Change your password**")
    current_pw = st.text_input("Current password", type="password")
    new_pw = st.text_input("New password", type="password", help="At least 8 characters.")
    again = st.text_input("New password again", type="password")
    submitted = st.form_submit_button("Change password", type="primary")

if submitted:
    if new_pw != again:
        st.error("The two new passwords differ: type the same password twice.")
    else:
        with db() as session:
            def change() -> None:
                me = people.authenticate(session, username=user.username, password=current_pw,
                                         client=getattr(st.context, "ip_address", None))
                changed = people.set_password(session, actor=me, username=me.username, password=new_pw,
                                                 keep_login=st.session_state.get("login_id"))
                # The change ends every other open session; this one carries on under the new epoch.
                st.session_state["session_epoch"] = changed.session_epoch
            act(change, "Password changed.")
