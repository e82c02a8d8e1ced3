"""What every page shares: the database session, the person logged in, the project in view,
and one way to show what core answered. No business rule lives here: pages ask core.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import streamlit as st
from sqlmodel import Session

from core.access import logins
from core.access import session as app_db
from core.access.people import account, check_session
from core.access.projects import can_view, projects_for, roles_of
from core.access.session import Job, Project, User
from core.domain.errors import StillroomError
from core.domain.roles import Role
from core.notify import inbox as _failures_told  # noqa: F401  (registers the submitter's notice of a job found dead)
from core.notify.delivery import resume

T = TypeVar("T")
# The web server's routes that set and drop the HttpOnly login cookie (web.py).
CLAIM_ROUTE, FORGET_ROUTE = "/stillroom/login-cookie", "/stillroom/logout-cookie"


@st.cache_resource(show_spinner=False)
def _schema_ready(url: str) -> bool:
    # Cached per database URL: migrations and guards run once per server, not per script run.
    app_db.prepare_database(url)
    resume(url)  # webhooks that other processes left pending are retried by the server
    return True


@contextmanager
def db() -> Iterator[Session]:
    url = app_db.database_url()
    _schema_ready(url)
    with app_db.open_session(url) as session:
        yield session


def start_session(user: User, *, login_id: int | None = None) -> None:
    """Remember who logged in, under which session epoch and login, and when they were last seen."""
    st.session_state["user_id"] = user.id
    st.session_state["session_epoch"] = user.session_epoch or 0
    st.session_state["last_seen"] = time.time()
    st.session_state["login_id"] = login_id
    st.session_state.pop("logged_out", None)


def log_in(session: Session, user: User) -> None:
    """Start the session of a person whose password core just checked, and open the login that outlives a
    refresh: its one-time code is swapped for the HttpOnly cookie by the page's next run (``cookie_script``)."""
    opened = logins.open_login(session, user=user)
    start_session(user, login_id=opened.login_id)
    st.session_state["login_code"] = opened.code


def log_out(session: Session) -> None:
    """End the login in core (its cookie logs nobody in any more, in any tab) and forget this tab's session."""
    logins.end_login(session, login_id=st.session_state.get("login_id"))
    st.session_state.clear()
    st.session_state["logged_out"] = True  # this tab does not resume from the cookie the browser still holds
    st.session_state["forget_cookie"] = True


def cookie_script() -> None:
    """Ask the web server (web.py) to set, or to drop, the HttpOnly login cookie; JavaScript never sees the
    cookie itself, only the one-time code that claims it."""
    code = st.session_state.pop("login_code", None)
    if code:
        body = json.dumps(code)
        st.html(f"<script>fetch('{CLAIM_ROUTE}', {{method: 'POST', body: {body}, credentials: 'same-origin'}})"
                f".then(r => {{document.body.dataset.loginCookie = r.ok ? 'set' : 'refused'}})</script>",
                unsafe_allow_javascript=True)
    if st.session_state.pop("forget_cookie", None):
        st.html(f"<script>fetch('{FORGET_ROUTE}', {{method: 'POST', credentials: 'same-origin'}})"
                ".then(() => {document.body.dataset.loginCookie = 'dropped'})</script>",
                unsafe_allow_javascript=True)


def _resume(session: Session) -> User | None:
    """The person whose login cookie this browser sent (a refresh, a new tab, a link), if core lets it in."""
    if st.session_state.get("logged_out"):
        return None
    back = logins.resume(session, cookie=st.context.cookies.get(logins.COOKIE_NAME))
    if back.user is None:
        if back.reason:
            st.session_state["logout_reason"] = back.reason
        return None
    start_session(back.user, login_id=back.login_id)
    return back.user


def _end(reason: str) -> None:
    for key in ("user_id", "session_epoch", "last_seen", "login_id"):
        st.session_state.pop(key, None)
    st.session_state["logout_reason"] = reason


def current_user(session: Session) -> User | None:
    """The person logged in, if core's session rules (active, same epoch, not idle too long, the login still
    open) let them go on; else the person the browser's login cookie names, if core lets it in."""
    uid = st.session_state.get("user_id")
    if uid is None:
        return _resume(session)
    user = account(session, uid)
    check = check_session(user, epoch=st.session_state.get("session_epoch"),
                          last_seen=st.session_state.get("last_seen"), now=time.time())
    login_id = st.session_state.get("login_id")
    if check.ok and login_id is not None:
        check = logins.check_login(session, login_id=login_id)
    if not check.ok:
        logins.end_login(session, login_id=login_id)  # an idle tab's login must not come back from its cookie
        _end(check.reason)
        return None
    st.session_state["last_seen"] = time.time()
    return user


def require_user(session: Session) -> User:
    user = current_user(session)
    if user is None:
        st.warning(st.session_state.get("logout_reason") or "Your session ended: log in again.")
        st.stop()
    return user


def visible_projects(session: Session, user: User) -> list[Project]:
    return projects_for(session, user=user)


def current_project(session: Session, user: User) -> Project:
    """The project picked in the sidebar; stops the page when there is none to show."""
    pid = st.session_state.get("project_id")
    project = app_db.project_by_id(session, project_id=pid) if pid is not None else None
    if project is None:
        st.info("Pick a project in the sidebar (an admin creates projects on the People & projects page).")
        st.stop()
    try:
        can_view(session, user=user, project=project)
    except StillroomError as exc:
        st.error(str(exc))
        st.stop()
    return project


def page_start(title: str, *, role: Role | None = None) -> tuple[User, Project, bool]:
    """The page's title and the success line of the action that led here; then the person, the project in
    view and whether the person holds ``role`` on it (pages stop here when either is missing)."""
    st.title(title)
    show_flash()
    with db() as session:
        user = require_user(session)
        project = current_project(session, user)
        holds = role is not None and role in roles_of(session, project_id=project.id, user_id=user.id)
    return user, project, holds


def act(fn: Callable[[], T], success: str | Callable[[T], str] | None = None, *, rerun: bool = False) -> T | None:
    """Run one core call; show its refusal as the sentence core wrote, or a success line.

    With ``rerun`` the page starts over so it shows the new state, and the success
    line is carried across the rerun.
    """
    try:
        result = fn()
    except StillroomError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    message = (success(result) if callable(success) else success) if success else None
    if rerun:
        if message:
            st.session_state["flash"] = message
        st.rerun()
    if message:
        st.success(message, icon=":material/check_circle:")
    return result


def show_flash() -> None:
    """The success line of the action that caused this rerun, shown once."""
    message = st.session_state.pop("flash", None)
    if message:
        st.success(message, icon=":material/check_circle:")


def link_params(*, project_id: int, evaluation_id: int | None = None) -> dict[str, str]:
    """The query parameters of a link into the app: the project, and the evaluation where there is one."""
    params = {"project": str(project_id)}
    if evaluation_id is not None:
        params["evaluation"] = str(evaluation_id)
    return params


def linked_index(name: str, options: list, *, default: int) -> int:
    """Where the option a link names (``?name=value``) sits among a select box's options; ``default`` when the
    link names none of them (a stale or made-up link opens the page as usual)."""
    wanted = st.query_params.get(name)
    texts = [str(o) for o in options]
    return texts.index(wanted) if wanted in texts else default


def comma_list(text: str) -> list[str]:
    """The items of a comma-separated form field, trimmed, blanks left out (core validates them)."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def secret(name: str) -> str | None:
    """A value from Streamlit's secrets, or None when there is no secrets file (it comes from the environment)."""
    try:
        return st.secrets.get(name)
    except FileNotFoundError:
        return None


def option_index(options: list[str], guess: str | None) -> int:
    """Where core's guess for a column sits among a select box's options (the first when it guessed none)."""
    return options.index(guess) if guess in options else 0


def start_job(job: Job | None) -> None:
    """Start the job core queued, in its own process, and show the page again with its progress; nothing when
    core refused it (``act`` has shown why)."""
    if job is not None:
        app_db.start_job(job.id)
        st.rerun()


def job_panel(job_id: int, *, label: str = "") -> str:
    """A job's progress bar, refreshed every second while it runs; returns the job's status.

    The work itself runs in its own process (``core.access.session.start_job``): the
    page only reads the progress the job writes to the database.
    """

    def _read():
        with db() as session:
            return app_db.job(session, job_id=job_id)

    def _draw(job) -> None:
        state = app_db.job_state(job)
        title = f"{label or job.kind} · job #{job.id} · {state.status} · {app_db.job_timing(job)}"
        st.progress(job.progress, text=f"{title}: {job.message}" if job.message else title)
        if state.status == "stalled":  # its worker went quiet: say so rather than show it running for ever
            st.warning(state.sentence(), icon=":material/hourglass_disabled:")
        elif state.note and state.status == "queued":  # left for `stillroom worker`: say one must run
            st.caption(state.sentence())
        if job.status == "failed":
            st.error(job.error or "The job failed without a message.", icon=":material/error:")

    job = _read()
    if job.status not in ("queued", "running"):
        _draw(job)
        return job.status

    @st.fragment(run_every=1.0)
    def _poll() -> None:
        current = _read()
        _draw(current)
        if current.status not in ("queued", "running"):
            st.rerun(scope="app")  # the finished job's results appear on the whole page

    _poll()
    return job.status


