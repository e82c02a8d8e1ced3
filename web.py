"""Stillroom's web server: the Streamlit app (app.py) plus the two routes Streamlit cannot offer a script,
which set and drop the login cookie as HttpOnly (JavaScript on the page never reads it).

Run it with ``streamlit run web.py`` (Streamlit serves an ``st.App`` through uvicorn). ``streamlit run app.py``
still works, without the cookie: a refresh then logs the person out, as before issue 19.
"""

from __future__ import annotations

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from streamlit.runtime.pages_manager import PagesManager

from core.access import logins
from core.access.session import database_url, open_session
from core.domain.errors import AuthenticationFailed
from pages._ui import CLAIM_ROUTE, FORGET_ROUTE


def _claim(code: str) -> logins.LoginCookie:
    with open_session(database_url()) as session:
        return logins.claim_cookie(session, code=code)


async def claim_cookie(request: Request) -> JSONResponse:
    """Swap the one-time code the page was given at login for the signed, expiring, HttpOnly cookie."""
    code = (await request.body()).decode("utf-8", "replace")[:200]
    try:
        cookie = await run_in_threadpool(_claim, code)
    except AuthenticationFailed as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    response = JSONResponse({"ok": True})
    response.set_cookie(logins.COOKIE_NAME, cookie.value, max_age=cookie.max_age_s, path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


async def forget_cookie(request: Request) -> JSONResponse:
    """Drop the cookie at logout (core has already ended its login, so a copy of it is worthless anyway)."""
    response = JSONResponse({"ok": True})
    response.delete_cookie(logins.COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


# app.py declares its pages with st.navigation. Until a first script run calls it, Streamlit would take the
# pages/ folder for its old multipage folder and run pages/review.py alone for a first visitor opening /review
# (no login, no navigation): say now what st.navigation says on its first call.
PagesManager.uses_pages_directory = False

app = st.App("app.py", routes=[Route(CLAIM_ROUTE, claim_cookie, methods=["POST"]),
                               Route(FORGET_ROUTE, forget_cookie, methods=["POST"])])
