"""Making user text inert in exports: spreadsheet formulas neutralised, Markdown and HTML shown as typed.

Imported data may hold ``=HYPERLINK(...)``, ``@SUM(...)``, ``<script>`` or ``[x](javascript:...)``: it is data and
is stored as it came. Every export that a spreadsheet, a Markdown renderer or a browser may open passes user text
through here, so it is displayed, never run.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Collection

import pandas as pd

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?$")
# The Markdown characters that make links, images, emphasis, code, headings or table cells.
_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]<>#!|~$])")


def formula_safe(text: str) -> str:
    """``text``, with a leading quote when a spreadsheet would run it as a formula (numbers stay numbers)."""
    stripped = text.lstrip(" ")
    if stripped.startswith(FORMULA_START) and not _NUMBER.match(stripped.strip()):
        return "'" + text
    return text


def unquote_formula(text: str) -> str:
    """``text`` as it was before ``formula_safe``: the leading quote removed only where ``formula_safe`` put it."""
    if text.startswith("'") and formula_safe(text[1:]) == text:
        return text[1:]
    return text


def known_value(text: str, known: Collection[str]) -> str:
    """The value of ``known`` that a cell read back from an export names: the cell itself when it is known, else
    the value the export neutralised into it (a team sends back ``'=ID0`` for the id ``=ID0``)."""
    if text in known:
        return text
    original = unquote_formula(text)
    return original if original in known else text


def csv_cell(value: object) -> str:
    """One CSV cell: empty when missing (None, NaN), else the text formula-safe."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
    return "" if missing else formula_safe(str(value))


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name formula-safe (numbers stay numbers, so a table still sorts
    them): what a table that can be downloaded as CSV is given."""
    safe = frame.map(lambda v: formula_safe(v) if isinstance(v, str) else v)
    safe.columns = [formula_safe(c) if isinstance(c, str) else c for c in frame.columns]
    return safe


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV that a spreadsheet shows and never runs: every cell formula-safe, and every cell
    holding a CR or LF quoted (RFC 4180 line ends make the writer quote both, so a lone CR cannot end a row)."""
    cells = frame.map(csv_cell)
    cells.columns = [csv_cell(c) for c in frame.columns]
    text: str = cells.to_csv(index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    return text.encode("utf-8")


def markdown_text(text: str) -> str:
    """Text for a Markdown document: formulas neutralised, every active character escaped (no links, no
    emphasis, no HTML), one line."""
    safe = html.escape(formula_safe(text), quote=False)
    return _MD_ACTIVE.sub(r"\\\1", safe).replace("\n", " ").replace("\r", " ")


def html_text(text: str) -> str:
    """Text for an HTML document: formulas neutralised, markup escaped."""
    return html.escape(formula_safe(text))
