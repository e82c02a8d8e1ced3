"""What the two data pages share: their heading, who may change the data, and the requests waiting on it."""

from __future__ import annotations

import streamlit as st

from core.access.session import Project
from core.data import datasets
from core.decision import requests as data_requests
from core.domain.roles import Role
from core.rollout import redistill
from pages._show import esc
from pages._ui import db, page_start


def data_page(title: str) -> tuple[Project, bool, list]:
    """Show the page's heading and what is asked of the data; returns the project, whether the person
    drives it, and its datasets, oldest first."""
    _, project, is_driver = page_start(title, role=Role.DRIVER)
    with db() as session:
        all_sets = datasets.list_datasets(session, project_id=project.id)
        redistill_requests = redistill.list_redistill(session, project.id)
        asked = data_requests.status(session, project=project)
    st.caption(f"Project: {esc(project.name)}. Most of a distillation project's time goes here: real inputs, "
               "no duplicates, every critical slice covered, a holdout nobody trains on.")
    if not is_driver:
        st.info(f"Only a driver of {esc(project.name)} imports and changes its data; you can look.")
    for r in asked:  # the sponsor's latest iterate: what it asked for and what has come in
        (st.success if r.met else st.warning)(f"Data request: {esc(r.sentence())}")
    for r in redistill_requests[-3:]:
        wanted = redistill.wanted(r)
        st.warning(f"Re-distillation request #{r.id} from the operator ({r.created_at:%Y-%m-%d}): {esc(r.reason)}"
                   + (f" Collect: {esc(wanted)}." if wanted else ""), icon=":material/replay:")
    return project, is_driver, all_sets


def dataset_names(all_sets: list) -> dict[int, str]:
    return {d.id: f"#{d.id} {d.name} ({d.purpose}, {d.n_rows:,} rows)" for d in all_sets}
