"""How numbers and missing values read in tables: one rule for every page and the CLI.

A missing value reads as a dash (never "None" or "nan"); a float is rounded to
the digits a person can use, so 0.30000000000000004 reads 0.3.
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real
from typing import Any

import pandas as pd

MISSING = "—"


def is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def number(value: object, *, digits: int = 3, unit: str = "", missing: str = MISSING) -> str:
    """One value as text: a dash when missing, integers with thousands separators, floats to ``digits``."""
    if is_missing(value):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        text = f"{int(value):,}"
    elif isinstance(value, Real):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            text = f"{int(v):,}"
        elif 0 < abs(v) < 10 ** -digits:
            text = f"{v:.{digits}g}"  # a tiny rate keeps its significant digits
        else:
            text = f"{v:,.{digits}f}".rstrip("0").rstrip(".")
    else:
        return str(value)
    return f"{text} {unit}".rstrip() if unit else text


def tidy(data: pd.DataFrame | list[dict[str, Any]], *, digits: int = 3) -> pd.DataFrame:
    """A table ready to show: float noise rounded away, and columns with gaps as text with a dash for each gap.

    Numeric columns without gaps stay numeric (so they still sort as numbers), rounded to ``digits``.
    """
    df = pd.DataFrame(data).copy()
    for col in df.columns:
        s = df[col]
        gaps = s.map(is_missing)
        if pd.api.types.is_float_dtype(s) and not gaps.any():
            df[col] = s.round(digits)
        elif gaps.any() or s.dtype == object:
            df[col] = s.map(lambda v: number(v, digits=digits)).astype(str)
    return df


def numeric(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` with ``columns`` as floats, every gap (a dash, None, text) a NaN: what a number column of a table
    needs, since a number column given text marks each such cell as an invalid value."""
    out = df.copy()
    for name in columns:
        if name in out.columns:
            text = out[name].map(lambda v: v.replace(",", "") if isinstance(v, str) else v)
            out[name] = pd.to_numeric(text, errors="coerce").astype(float)
    return out


def readable(value: object, *, digits: int = 3) -> str:
    """A JSON-like value (a dict, a list, or their JSON text) as "key: value" text a person reads, numbers
    rounded: {"n": 3, "share": 0.30000000000000004} reads "n: 3; share: 0.3"."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_part(v, digits)}" for k, v in value.items())
    return _part(value, digits)


def _part(value: object, digits: int) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}: {_part(v, digits)}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_part(v, digits) for v in value) + "]"
    if isinstance(value, str):
        return value
    return number(value, digits=digits)


# Bucket widths a time axis may use, narrowest first (pandas offset aliases).
BUCKETS = ("1s", "5s", "15s", "1min", "5min", "15min", "1h", "6h", "1D", "7D")


def time_bucket(start: Any, end: Any, *, at_most: int = 60) -> str:
    """The narrowest bucket that cuts the span from ``start`` to ``end`` into at most ``at_most`` buckets, so a
    chart of a minute's traffic has seconds on its axis and a chart of a month has days."""
    span = pd.Timestamp(end) - pd.Timestamp(start)
    for freq in BUCKETS:
        if span / pd.Timedelta(freq) <= at_most:
            return freq
    return BUCKETS[-1]

