"""Driving the Streamlit app in-process with AppTest, logged in as a demo person."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def app_as(user=None, *, page: str | None = None, project_id: int | None = None) -> AppTest:
    """The app after one run as ``user`` (None: logged out), switched to ``page`` if given.

    AppTest runs only the page script after a switch, so the person and the
    project are put in session state first, as the sidebar would.
    """
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:  # as pages._ui.start_session leaves it after a login
        at.session_state["user_id"] = user.id
        at.session_state["session_epoch"] = user.session_epoch or 0
        at.session_state["last_seen"] = time.time()
    if project_id is not None:
        at.session_state["project_id"] = project_id
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def by_label(elements, label: str):
    """The one widget among ``elements`` whose label is ``label``."""
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, f"{len(found)} widgets labelled {label!r}: {[e.label for e in elements]}"
    return found[0]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def frame_with(at, column: str):
    """The one table on the page that has ``column``."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"{len(frames)} tables with a {column!r} column"
    return frames[0]


def page_links(at) -> list[tuple[str, str, str]]:
    """Every ``st.page_link`` on the page: (label, the page's address, its query string)."""
    return [(e.proto.label, e.proto.page, e.proto.query_string) for e in at.get("page_link")]
