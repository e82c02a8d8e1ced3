"""Making user text inert in exports: spreadsheet formulas neutralised, Markdown and HTML shown as typed.

Imported data may hold ``=HYPERLINK(...)``, ``@SUM(...)``, ``<script>`` or ``[x](javascript:...)``: it is data and
is stored as it came. Every export that a spreadsheet, a Markdown renderer or a browser may open passes user text
through here, so it is displayed, never run.
"""

from __future__ import annotations

import html
import re

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


def csv_cell(value: object) -> str:
    return formula_safe("" if value is None else str(value))


def markdown_text(text: str) -> str:
    """Text for a Markdown document: formulas neutralised, every active character escaped (no links, no
    emphasis, no HTML), one line."""
    safe = html.escape(formula_safe(text), quote=False)
    return _MD_ACTIVE.sub(r"\\\1", safe).replace("\n", " ").replace("\r", " ")


def html_text(text: str) -> str:
    """Text for an HTML document: formulas neutralised, markup escaped."""
    return html.escape(formula_safe(text))
