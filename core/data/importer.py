"""Importing production inputs: a CSV, JSONL or Parquet file mapped onto the dataset schema.

The whole file is validated before anything is written; the first problem found
is refused with a sentence naming the row, the column and the fix, and the
database and the data directory are left as they were.

Text that starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``) or holds
HTML is data (moderation inputs are full of it) and is stored as it came: every
page renders it as text, and every export neutralises it (``core.domain.textsafe``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlmodel import Session

from core.access.projects import require_role
from core.data import datasets
from core.data.readers import MAX_UPLOAD_BYTES, Source, read_bytes, read_source
from core.domain.errors import InvalidInput
from core.domain.mapping import ColumnMapping, StoredMapping
from core.domain.roles import Role
from core.domain.validation import parse
from core.store.models import Dataset, Project, User

MAX_SLICES = 16
MAX_TEXT_CHARS = 20_000
MAX_ID_CHARS = 200
MAX_VALUE_CHARS = 200  # slice values and reference labels (a gate's slice value is at most 200 too)

# What pandas, Excel and most exports write for a missing value: as a label it would become a class of its own.
MISSING_WORDS = ("nan", "null", "none", "n/a", "#n/a")


@dataclass(frozen=True)
class Preview:
    """What the mapping step shows: the file's columns, its first rows and a guess at the mapping."""

    format: str
    columns: list[str]
    rows: pd.DataFrame
    n_rows: int
    suggested: dict = field(default_factory=dict)


def preview(*, data: bytes | None = None, path: str | Path | None = None, filename: str | None = None,
            n: int = 20, max_bytes: int = MAX_UPLOAD_BYTES) -> Preview:
    """The file's columns and first ``n`` rows (refusing a malformed file, as import would)."""
    raw, name = read_bytes(data=data, path=path, filename=filename, max_bytes=max_bytes)
    source = read_source(raw, name)
    columns = [str(c) for c in source.frame.columns]
    return Preview(format=source.format, columns=columns, rows=source.frame.head(n).copy(),
                   n_rows=len(source.frame), suggested=suggest_mapping(columns))


def suggest_mapping(columns: list[str]) -> dict:
    """A first guess at id and text columns by their names; the person confirms it."""
    lower = {c.lower(): c for c in columns}

    def pick(*names: str) -> str | None:
        return next((lower[n] for n in names if n in lower), None)

    return {"id": pick("id", "ticket_id", "uid", "key"),
            "text": pick("text", "input", "body", "message", "content", "prompt"),
            "reference": pick("reference", "label", "answer", "queue_label"),
            "timestamp": pick("timestamp", "created_at", "time", "date")}


def import_dataset(
    session: Session, *, actor: User, project: Project, mapping: ColumnMapping | dict,
    data: bytes | None = None, path: str | Path | None = None, filename: str | None = None,
    purpose: str = "prompts", name: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES,
) -> Dataset:
    """Validate the whole file and store it as a new Dataset (driver only)."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="import data")
    mapping = parse_mapping(mapping)
    if purpose not in datasets.PURPOSES:
        raise InvalidInput(f"purpose {purpose!r} is not known; use prompts (to distil on) or production "
                           "(the log to compare coverage with).", field="purpose")
    raw, filename = read_bytes(data=data, path=path, filename=filename, max_bytes=max_bytes)
    name = (name or Path(filename).stem).strip()
    if not name or len(name) > 120:
        raise InvalidInput("the dataset name must be 1 to 120 characters; give a shorter name.", field="name")
    source = read_source(raw, filename)
    df = to_schema(source, mapping, filename)
    stats = {
        "rows": len(df), "source_bytes": len(raw), "source_sha256": hashlib.sha256(raw).hexdigest(),
        "with_reference": int(df["reference"].notna().sum()), "with_timestamp": int(df["timestamp"].notna().sum()),
        "slices": {s: int(df[s].nunique()) for s in mapping.slices},
    }
    stored = StoredMapping.of(mapping, source=filename, file_format=source.format)
    return datasets.store(session, actor=actor, project=project, df=df, name=name, purpose=purpose,
                          operation="import", mapping=stored.stored(), stats=stats)


# --------------------------------------------------------------------------- validation


def parse_mapping(mapping: ColumnMapping | dict) -> ColumnMapping:
    try:
        return parse(ColumnMapping, mapping)
    except InvalidInput as exc:
        raise InvalidInput(f"Column mapping: {str(exc).rstrip('.')}; map the id and text fields to columns of "
                           "the file (slices, reference and timestamp are optional).", field=exc.field) from None


def check_mapping(mapping: ColumnMapping, columns: list[str], filename: str) -> None:
    present = set(columns)
    seen: dict[str, str] = {}
    for role, col in mapping.sources():
        if col not in present:
            shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            raise InvalidInput(f"the {role} column {col!r} is not in {filename} (its columns: {shown}); "
                               "check the spelling or map another column.", field=role)
        if col in seen:
            raise InvalidInput(f"column {col!r} is mapped twice (as {seen[col]} and as {role}); map each "
                               "source column once.", field=role)
        seen[col] = role
    if len(mapping.slices) > MAX_SLICES:
        raise InvalidInput(f"{len(mapping.slices)} slice columns are mapped, more than {MAX_SLICES}; keep the "
                           "slices the gate and the coverage audit need.", field="slices")
    clash = [s for s in mapping.slices if s in datasets.BASE_COLUMNS]
    if clash:
        raise InvalidInput(f"slice column {clash[0]!r} has the name of a dataset field (id, text, reference, "
                           "timestamp); rename that column in the file.", field="slices")
    if mapping.labels and not mapping.reference:
        raise InvalidInput("allowed labels are given but no reference column is mapped; map the reference "
                           "column or leave the labels out.", field="labels")


def _text(source: Source, col: str) -> pd.Series:
    s = source.frame[col]
    if isinstance(s.dtype, pd.StringDtype):
        return s.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(s):
        s = s.dt.strftime("%Y-%m-%dT%H:%M:%S%z").where(s.notna(), None)
    return s.astype(object).where(s.notna(), None).astype("str")


def _matches(s: pd.Series, pattern: str, *, regex: bool = True) -> np.ndarray:
    """Cells matching ``pattern`` (RE2, run by pyarrow: pandas would fall back to Python's re row by row)."""
    arr = pa.array(s.astype("str"), from_pandas=True)
    hit = pc.match_substring_regex(arr, pattern) if regex else pc.match_substring(arr, pattern)
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False)


def _fail(source: Source, mask: np.ndarray | pd.Series, col: str, problem, fix: str) -> None:
    """Refuse the first row flagged by ``mask``; ``problem`` maps that row's index to a phrase."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(hits):
        return
    i = int(hits[0])
    others = len(hits) - 1
    more = f" ({others} more {'row has' if others == 1 else 'rows have'} the same problem)" if others else ""
    raise InvalidInput(f"{source.where(i)}, column {col}: {problem(i)}; {fix}{more}.", field=col)


def _check_cells(source: Source, col: str, s: pd.Series, *, role: str, max_chars: int) -> None:
    missing = s.isna() | (s == "")
    _fail(source, missing, col, lambda i: "the cell is empty",
          "give every row an id" if role == "id" else "fill it or drop the row")
    _fail(source, s.str.strip() == "", col, lambda i: "the cell holds only spaces",
          "fill it or drop the row")
    _fail(source, _matches(s, "\x00", regex=False), col, lambda i: "the cell contains a NUL character",
          "remove it; the export may be corrupt")
    lengths = s.str.len()
    _fail(source, lengths > max_chars, col,
          lambda i: f"the cell is {int(lengths.iloc[i]):,} characters long, over the {max_chars:,} allowed",
          "shorten it or drop the row")


def to_schema(source: Source, mapping: ColumnMapping, filename: str) -> pd.DataFrame:
    """The dataset-schema table, or InvalidInput for the first problem found."""
    check_mapping(mapping, [str(c) for c in source.frame.columns], filename)
    ids = _text(source, mapping.id)
    _check_cells(source, mapping.id, ids, role="id", max_chars=MAX_ID_CHARS)
    ids = ids.str.strip()
    dup = ids.duplicated(keep="first").to_numpy()
    _fail(source, dup, mapping.id,
          lambda i: f"id {ids.iloc[i]!r} is also the id of {source.where(int(np.argmax(ids == ids.iloc[i])))}",
          "ids must be unique, so fix or drop one of the two rows")
    texts = _text(source, mapping.text)
    _check_cells(source, mapping.text, texts, role="text", max_chars=MAX_TEXT_CHARS)
    out = pd.DataFrame({"id": ids, "text": texts})
    out["reference"] = _reference(source, mapping)
    out["timestamp"] = _timestamps(source, mapping.timestamp)
    for col in mapping.slices:
        values = _text(source, col)
        _check_cells(source, col, values, role="slice", max_chars=MAX_VALUE_CHARS)
        out[col] = values.str.strip()
    return out


def _reference(source: Source, mapping: ColumnMapping) -> pd.Series:
    if not mapping.reference:
        return pd.Series([None] * len(source.frame), dtype=object)
    col = mapping.reference
    refs = _text(source, col).str.strip()
    present = refs.notna() & (refs != "")
    _fail(source, present & refs.str.lower().isin(MISSING_WORDS) & ~refs.isin(mapping.labels or []), col,
          lambda i: f"{refs.iloc[i]!r} is how a missing value is written, not a label",
          "leave the cell empty for a row without a reference answer, or write the real label")
    _fail(source, present & (refs.str.len() > MAX_VALUE_CHARS), col,
          lambda i: f"the label is longer than {MAX_VALUE_CHARS} characters", "shorten it")
    if mapping.labels:
        unknown = present & ~refs.isin(mapping.labels)
        _fail(source, unknown, col,
              lambda i: f"{refs.iloc[i]!r} is not one of the allowed labels ({', '.join(mapping.labels)})",
              "correct the label or add it to the allowed labels")
    return refs.astype(object).where(present, None)


def _timestamps(source: Source, col: str | None) -> pd.Series:
    n = len(source.frame)
    if not col:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    raw = source.frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw if getattr(raw.dt, "tz", None) is not None else raw.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").reset_index(drop=True)
    values = _text(source, col).str.strip()
    present = values.notna() & (values != "")
    parsed = pd.to_datetime(values.where(present, None), utc=True, errors="coerce", format="ISO8601")
    _fail(source, present & parsed.isna(), col,
          lambda i: f"{values.iloc[i][:40]!r} is not a date and time",
          "write it in ISO 8601, e.g. 2024-05-01T13:45:00Z")
    return parsed.astype("datetime64[ns, UTC]").reset_index(drop=True)
