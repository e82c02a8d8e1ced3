"""Stillroom's entry point: login, the project picker, and the pages grouped by role."""

from __future__ import annotations

import streamlit as st

from core.access.projects import roles_held
from core.decision.portfolio import landing_project
from core.domain.roles import Role
from pages._show import esc
from pages._ui import cookie_script, current_user, db, log_out, visible_projects

st.set_page_config(page_title="Stillroom", page_icon=":material/science:", layout="wide")

OVERVIEW = [
    st.Page("pages/portfolio.py", title="Portfolio", icon=":material/dashboard:", default=True),
    st.Page("pages/audit.py", title="Audit log", icon=":material/receipt_long:"),
    st.Page("pages/record.py", title="Decision record", icon=":material/history_edu:"),
    st.Page("pages/inbox.py", title="Inbox", icon=":material/inbox:"),
]
# Section title -> (the roles that see it, its pages). The operator sees the review page too: choosing the
# fallback threshold is the validator's and the operator's.
BY_ROLE = {
    "Sponsor": ({Role.SPONSOR}, [
        st.Page("pages/qualify.py", title="Qualify the trigger", icon=":material/explore:"),
        st.Page("pages/gate.py", title="Success gate", icon=":material/lock:"),
        st.Page("pages/decide.py", title="Decide", icon=":material/balance:"),
    ]),
    "Driver": ({Role.DRIVER}, [
        st.Page("pages/import_data.py", title="Import data", icon=":material/upload_file:"),
        st.Page("pages/coverage_holdout.py", title="Coverage and holdout", icon=":material/donut_small:"),
        st.Page("pages/teacher.py", title="Teacher", icon=":material/school:"),
        st.Page("pages/train.py", title="Train students", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
    ]),
    "Validator": ({Role.VALIDATOR, Role.OPERATOR}, [
        st.Page("pages/review.py", title="Review and sign off", icon=":material/rate_review:"),
    ]),
    "Operator": ({Role.OPERATOR}, [
        st.Page("pages/operate.py", title="Rollout and monitoring", icon=":material/traffic:"),
    ]),
}
ADMIN = [st.Page("pages/admin.py", title="People & projects", icon=":material/group:")]
ACCOUNT = [st.Page("pages/account.py", title="My account", icon=":material/person:")]
LOGIN = st.Page("pages/login.py", title="Log in", icon=":material/login:", default=True)
ALL_PAGES = [*OVERVIEW, *(p for _, pages in BY_ROLE.values() for p in pages), *ADMIN, *ACCOUNT]


def _wanted_project(ids: list[int]) -> int | None:
    """The project a link names (``?project=N``), if the person may open it."""
    try:
        wanted = int(st.query_params.get("project", ""))
    except ValueError:
        return None
    return wanted if wanted in ids else None


def _keep_project_in_link() -> None:
    st.query_params["project"] = str(st.session_state["project_id"])


def _sidebar(session, user, projects) -> None:
    st.sidebar.markdown(f"**{esc(user.display_name)}** · `{user.username}`" + (" · admin" if user.is_admin else ""))
    ids = [p.id for p in projects]
    names = {p.id: p.name for p in projects}
    linked = _wanted_project(ids)
    if linked is not None:
        st.session_state["project_id"] = linked  # a link names its project: it opens there
    elif st.session_state.get("project_id") not in ids:
        # Land where the person's oldest waiting work is, not on whichever project sorts first.
        st.session_state["project_id"] = landing_project(session, user=user) if ids else None
    if ids:
        st.sidebar.selectbox("Project", ids, format_func=names.get, key="project_id",
                             on_change=_keep_project_in_link)
        _keep_project_in_link()  # the address bar always names the project: copy it, and it is a link
    else:
        st.sidebar.caption("You hold no role on any project yet.")
    if st.sidebar.button("Log out", icon=":material/logout:"):
        log_out(session)
        st.rerun()


with db() as session:
    user = current_user(session)
    if user is None:
        # Every page's address opens the login page, so a link opened logged out is not "page not found".
        nav = st.navigation([LOGIN, *(st.Page("pages/login.py", title="Log in", url_path=p.url_path)
                                      for p in ALL_PAGES if p.url_path)], position="hidden")
    else:
        held = roles_held(session, user_id=user.id)
        sections = {"Overview": OVERVIEW}
        if user.is_admin:  # the admin's own pages come first, not below every role's
            sections["Admin"] = ADMIN
        for title, (roles, pages) in BY_ROLE.items():
            if roles & held or user.is_admin:
                sections[title] = pages
        sections["Account"] = ACCOUNT
        # Expanded: an admin sees every group, and no page hides behind "View N more".
        nav = st.navigation(sections, expanded=True)
        _sidebar(session, user, visible_projects(session, user))
    cookie_script()

nav.run()
