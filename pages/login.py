"""Log in with a local account; passwords are checked by core (argon2), never kept here."""

from __future__ import annotations

import streamlit as st

from core.governance.people import authenticate
from pages._ui import act, db

st.title("🫙 Stillroom")
st.caption("Distil a teacher model into a student, with the bar fixed before training and every decision on record.")

with st.form("login"):
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Log in", type="primary")

if submitted:
    with db() as session:
        user = act(lambda: authenticate(session, username=username, password=password))
    if user is not None:
        st.session_state["user_id"] = user.id
        st.rerun()

st.caption("Trying the demo? The demo people and their passwords are listed in the README.")
