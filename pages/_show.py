"""How pages show things: text escaped, tables formula-safe, charts, figures side by side, a gate check.

Rendering only, no rule: what is shown comes from core.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from core.domain.criteria import Criterion
from core.domain.display import numeric, tidy
from core.domain.textsafe import safe_frame

# Markdown's active characters; user text is shown escaped so a name like
# "[click](http://x)" or "**boss**" renders as typed, never as a link or markup.
_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def esc(text: object) -> str:
    return _MD_ACTIVE.sub(r"\\\1", str(text))


def table(data: pd.DataFrame | list[dict], *, where: Any = st, **kwargs: Any) -> None:
    """``st.dataframe`` (in ``where``: the page or one of its columns) given formula-safe text: its toolbar's
    CSV download is an export like any other, so a cell a spreadsheet would run carries a leading quote on
    screen and in the file. A column configured as a number (or progress bar) is given as floats, its gaps
    empty, never as text, which the grid would mark in red as an invalid value."""
    config = kwargs.get("column_config") or {}
    numbers = [name for name, c in config.items()
               if isinstance(c, dict) and (c.get("type_config") or {}).get("type") in ("number", "progress")]
    where.dataframe(safe_frame(numeric(pd.DataFrame(data), numbers)), **kwargs)


def chart(fig: Any, *, where: Any = st, **layout: Any) -> None:
    """A plotly figure drawn full width in ``where`` (the page or one of its columns), with the pages' margins
    unless ``layout`` sets its own."""
    fig.update_layout(**{"margin": dict(l=10, r=10, t=40, b=10), **layout})
    where.plotly_chart(fig, width="stretch")


def metric_row(figures: dict[str, str], *, where: Any = st) -> None:
    """Figures side by side, one column each, label above value."""
    for column, (label, value) in zip(where.columns(len(figures)), figures.items(), strict=True):
        column.metric(label, value)


def side_by_side(*panes: tuple[str, object]) -> None:
    """Texts next to each other under bold titles, shown as plain text (user text is never markup)."""
    for column, (title, text) in zip(st.columns(len(panes)), panes, strict=True):
        column.markdown(f"**{title}**")
        column.text(str(text or ""))


def short_hash(h: str | None) -> str:
    return f"{h[:12]}…" if h else ""


def criteria_table(criteria: list[Criterion]) -> None:
    """An evaluation's gate check, one row per criterion, with where each figure came from."""
    rows = [c.as_dict() for c in criteria]
    if rows:
        columns = ("status", "name", "value", "threshold", "n", "source", "detail")
        table(tidy([{k: r[k] for k in columns} for r in rows]), hide_index=True, width="stretch")
