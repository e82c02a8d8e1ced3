"""Admin: people, projects and who holds which role. Core refuses all of it to non-admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import people, projects
from core.domain.roles import Role
from pages._show import table
from pages._ui import act, db, require_user, show_flash

st.title(":material/group: People & projects")
show_flash()

with db() as session:
    user = require_user(session)
    users = people.list_users(session)
    all_projects = projects.list_projects(session) if user.is_admin else []
    roster = projects.roster(session)

if not user.is_admin:
    st.info("Only an admin manages people, projects and roles.")
    st.stop()

usernames = [u.username for u in users]
roles = list(Role)
tab_people, tab_projects = st.tabs(["People", "Projects and roles"], key="admin_tab")

with tab_people:
    table(pd.DataFrame([{"Username": u.username, "Name": u.display_name, "Admin": u.is_admin,
                                "Active": u.is_active, "Since": f"{u.created_at:%Y-%m-%d}"} for u in users]),
                 hide_index=True, width="stretch")
    with st.form("new_person", clear_on_submit=True):
        st.markdown("**Add a person**")
        c1, c2 = st.columns(2)
        username = c1.text_input("Username", help="Lowercase letters, digits, dots, dashes; 2 to 64 characters.")
        display_name = c2.text_input("Display name")
        c3, c4 = st.columns(2)
        password = c3.text_input("Initial password", type="password", help="At least 8 characters.")
        is_admin = c4.checkbox("Admin")
        if st.form_submit_button("Add person", type="primary"):
            with db() as session:
                act(lambda: people.create_user(session, actor=require_user(session), username=username,
                                               display_name=display_name, password=password, is_admin=is_admin),
                    lambda u: f"{u.username} can now log in.", rerun=True)
    c1, c2 = st.columns(2)
    with c1.form("activation"):
        st.markdown("**Deactivate or reactivate**")
        who = st.selectbox("Person", usernames, key="activation_who")
        active = st.radio("Account", ["active", "deactivated"], horizontal=True) == "active"
        if st.form_submit_button("Apply"):
            with db() as session:
                act(lambda: people.set_active(session, actor=require_user(session), username=who, active=active),
                    f"{who} is now {'active' if active else 'deactivated'}.", rerun=True)
    with c2.form("reset_password", clear_on_submit=True):
        st.markdown("**Reset a password**")
        who_pw = st.selectbox("Person", usernames, key="reset_who")
        new_pw = st.text_input("New password", type="password")
        if st.form_submit_button("Reset password"):
            with db() as session:
                act(lambda: people.set_password(session, actor=require_user(session), username=who_pw,
                                                password=new_pw), f"Password of {who_pw} reset.")

with tab_projects:
    table(pd.DataFrame([{"Project": p.name, "Description": p.description,
                                **{r.value: ", ".join(roster.get(p.id, {}).get(r.value, [])) for r in roles}}
                               for p in all_projects]), hide_index=True, width="stretch")
    with st.form("new_project", clear_on_submit=True):
        st.markdown("**Create a project**")
        name = st.text_input("Name")
        description = st.text_area("What the student will do")
        if st.form_submit_button("Create project", type="primary"):
            with db() as session:
                act(lambda: projects.create_project(session, actor=require_user(session), name=name,
                                                    description=description),
                    lambda p: f"Project {p.name!r} created: now assign its roles.", rerun=True)
    if all_projects:
        names = {p.id: p.name for p in all_projects}
        with st.form("roles"):
            st.markdown("**Assign or remove a role**")
            c1, c2, c3 = st.columns(3)
            pid = c1.selectbox("Project", list(names), format_func=names.get)
            who_role = c2.selectbox("Person", usernames, key="role_who")
            role = c3.selectbox("Role", roles, format_func=lambda r: r.value)
            b1, b2 = st.columns(2)
            assign = b1.form_submit_button("Assign role", type="primary")
            remove = b2.form_submit_button("Remove role")
        if assign or remove:
            with db() as session:
                actor, project = require_user(session), projects.get_project(session, pid)
                if assign:
                    act(lambda: projects.assign_role(session, actor=actor, project=project, username=who_role,
                                                     role=role), f"{who_role} is now {role.value} of {names[pid]!r}.",
                        rerun=True)
                else:
                    act(lambda: projects.remove_role(session, actor=actor, project=project, username=who_role,
                                                     role=role), f"{who_role} is no longer {role.value}.", rerun=True)
