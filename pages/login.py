"""Log in with a local account; passwords are checked by core (argon2), never kept here."""

from __future__ import annotations

import streamlit as st

from core.access.people import authenticate
from pages._ui import act, db, log_in

st.title(":material/science: Stillroom")
reason = st.session_state.pop("logout_reason", None)
if reason:
    st.warning(reason)
st.caption("Distil a teacher model into a student, with the bar fixed before training and every decision on record.")

with st.form("login"):
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Log in", type="primary")

if submitted:
    with db() as session:
        # The browser's address is the client that backoff counts; AppTest and some proxies give none.
        client = getattr(st.context, "ip_address", None)
        user = act(lambda: authenticate(session, username=username, password=password, client=client))
        if user is not None:
            log_in(session, user)
    if user is not None:
        st.rerun()

st.caption("Trying the demo? The demo people and their passwords are listed in the README.")
