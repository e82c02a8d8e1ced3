"""Reading an uploaded CSV, JSONL or Parquet file into a table of text cells, refusing malformed files.

Every refusal is an InvalidInput naming where the problem is (the line, row or
column) and what to do about it. Rows are counted as a person counts them: the
first data row is row 1 (a CSV's header is not a row); JSONL problems name the
line of the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.domain import textsafe
from core.domain.errors import InvalidInput

# Upload limits. The size limit can be overridden per call (max_bytes=...).
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
MAX_COLUMNS = 500
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Source:
    """A file's cells as text (missing cells are None), and how to name its rows."""

    frame: pd.DataFrame
    format: str
    unit: str  # "row" or "line"
    numbers: np.ndarray | None = None  # per row: the line it came from (JSONL); None: row i is row i + 1

    def where(self, i: int) -> str:
        n = int(self.numbers[i]) if self.numbers is not None else i + 1
        return f"{self.unit} {n}"


def read_ids(ids: pd.Series, known: Collection[str]) -> pd.Series:
    """A file's id cells as the ids of ``known`` they name: our CSV exports quote an id a spreadsheet would run
    (``'=ID0``), and the file a team sends back may keep that quote. Empty cells stay as they are."""
    return ids.map(lambda v: v if v is None or not str(v).strip() else textsafe.known_value(str(v), known))


def file_format(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"{filename or 'the file'}: {suffix or 'no'} extension is not supported; "
                           "upload a .csv, .jsonl (or .ndjson) or .parquet file.", field="file")
    return FORMATS[suffix]


def read_bytes(*, data: bytes | None, path: str | Path | None, filename: str | None,
               max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[bytes, str]:
    """The upload's bytes and its file name, refusing an empty or oversized file before reading it."""
    if (data is None) == (path is None):
        raise InvalidInput("give either the file's bytes or its path, not both or neither.", field="file")
    name = filename or (Path(path).name if path is not None else "")
    file_format(name)
    if path is not None:
        try:
            size = Path(path).stat().st_size
        except OSError:
            raise InvalidInput(f"{path}: no such file; check the path.", field="file") from None
        _check_size(name, size, max_bytes)
        data = Path(path).read_bytes()
    _check_size(name, len(data), max_bytes)
    return data, name


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InvalidInput(f"{name} is {_size(size)}, over the {_size(max_bytes)} upload limit; split the file "
                           "or import it with a higher limit.", field="file")
    if size == 0:
        raise InvalidInput(f"{name} is empty (0 bytes); export the data again and upload the file that "
                           "has rows in it.", field="file")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def read_source(data: bytes, filename: str) -> Source:
    fmt = file_format(filename)
    if fmt == "parquet":
        source = _read_parquet(data, filename)
    else:
        text = _decode(data, filename)
        source = _read_csv(data, text, filename) if fmt == "csv" else _read_jsonl(text, filename)
    if len(source.frame.columns) > MAX_COLUMNS:
        raise InvalidInput(f"{filename} has {len(source.frame.columns)} columns, more than the {MAX_COLUMNS} "
                           "Stillroom reads; keep only the columns you map.", field="file")
    if source.frame.empty:
        raise InvalidInput(f"{filename} has a header but no data rows; export the file again with its rows.",
                           field="file")
    return source


def _line_of(data: bytes | str, pos: int) -> int:
    return data[:pos].count(b"\n" if isinstance(data, bytes) else "\n") + 1


def _decode(data: bytes, filename: str) -> str:
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"line {_line_of(body, exc.start)} of {filename} is not UTF-8 text (byte "
                           f"0x{body[exc.start]:02x}); save the file with UTF-8 encoding and upload it again.",
                           field="file") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise InvalidInput(f"line {_line_of(text, nul)} of {filename} contains a NUL byte, which text never "
                           "holds; the file may be binary or UTF-16: save it as UTF-8 text.", field="file")
    if not text.strip():
        raise InvalidInput(f"{filename} holds only blank lines; upload the file that has rows in it.",
                           field="file")
    return text


def _newlines(text: str) -> str:
    """Old Mac exports end lines with a bare carriage return: read them as lines."""
    return text.replace("\r", "\n") if "\r" in text and "\n" not in text else text


def _delimiter(header_line: str) -> str:
    """The header's separator: a comma unless the header holds semicolons, tabs or pipes and no commas (a
    spreadsheet in a locale that writes decimal commas saves with semicolons)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    if counts[","] or not any(counts.values()):
        return ","
    return max(counts, key=counts.get)


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({n for n in names if n in seen or seen.add(n)})


def _read_csv(data: bytes, text: str, filename: str) -> Source:
    text = _newlines(text)
    lines = text.split("\n")
    skipped = next(i for i, line in enumerate(lines) if line.strip())  # _decode refused a file of blank lines
    if skipped:  # blank lines above the header: the header is the first line that holds something
        text = "\n".join(lines[skipped:])
    delimiter = _delimiter(text.split("\n", 1)[0])
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    names = [h.strip() for h in header]
    if any(not n for n in names):
        pos = [i + 1 for i, n in enumerate(names) if not n]
        raise InvalidInput(f"{filename}: header column {pos[0]} has no name; name every column in the "
                           "first line.", field="file")
    if dupes := _duplicates(names):
        raise InvalidInput(f"{filename}: the header names column {dupes[0]!r} twice; rename one of them so "
                           "every column name is unique.", field="file")
    table = _parse_csv(text.encode("utf-8"), names, filename, threads=True, delimiter=delimiter)
    frame = table.to_pandas()
    frame.columns = names
    return Source(frame=frame, format="csv", unit="row")


def _parse_csv(body: bytes, names: list[str], filename: str, *, threads: bool, delimiter: str = ",") -> pa.Table:
    bad: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    try:
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=threads, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        if bad and bad[0].number is None and threads:
            # Row numbers are only known when parsing on one thread: parse again to name the row.
            return _parse_csv(body, names, filename, threads=False, delimiter=delimiter)
        if bad:
            row = bad[0]
            where = f"row {row.number - 1}" if row.number else "a row"
            sep = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}[delimiter]
            raise InvalidInput(f"{filename}, {where}: has {row.actual_columns} fields where the header has "
                               f"{row.expected_columns} (columns read as separated by {sep}); quote cells that "
                               f"contain {sep} or fix the row.", field="file") from None
        raise InvalidInput(f"{filename} is not valid CSV ({exc}); export it again as comma-separated values.",
                           field="file") from None


class _NonFinite(str):
    """NaN, Infinity or -Infinity in a JSONL line: Python's json reads them, JSON itself does not allow them."""


def _cell(value: object, filename: str, line: int, key: str) -> str | None:
    if isinstance(value, _NonFinite):
        raise InvalidInput(f"line {line} of {filename}, column {key}: holds {value}, which is not a JSON value; "
                           "write null for a missing value, or quote it if the text really is that word.", field=key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise InvalidInput(f"line {line} of {filename}, column {key}: holds a {type(value).__name__}, not a "
                           "plain value; flatten it to text before importing.", field=key)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _read_jsonl(text: str, filename: str) -> Source:
    records: list[dict] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=lambda pairs, n=number: _object(pairs, filename, n),
                             parse_constant=_NonFinite)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number} of {filename} is not valid JSON ({exc.msg} at character "
                               f"{exc.colno}); fix that line or remove it.", field="file") from None
        except RecursionError:
            raise InvalidInput(f"line {number} of {filename} nests objects or lists too deeply to read; write "
                               'one flat {"column": value, ...} object per line.', field="file") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"line {number} of {filename} holds a JSON {type(obj).__name__}, not an object; "
                               'write one {"column": value, ...} object per line.', field="file")
        records.append({k: _cell(v, filename, number, k) for k, v in obj.items()})
        lines.append(number)
    frame = pd.DataFrame.from_records(records)
    frame = frame.astype(object).where(frame.notna(), None)
    return Source(frame=frame, format="jsonl", unit="line", numbers=np.array(lines))


def _object(pairs: list[tuple[str, object]], filename: str, line: int) -> dict:
    keys = [k for k, _ in pairs]
    if dupes := _duplicates(keys):
        raise InvalidInput(f"line {line} of {filename} names key {dupes[0]!r} twice; keep one value per key.",
                           field="file")
    return dict(pairs)


def _read_parquet(data: bytes, filename: str) -> Source:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{filename} is not a readable Parquet file ({exc}); export it again or upload "
                           "CSV instead.", field="file") from None
    if dupes := _duplicates(table.column_names):
        raise InvalidInput(f"{filename} has two columns named {dupes[0]!r}; rename one of them so every "
                           "column name is unique.", field="file")
    for field in table.schema:
        if pa.types.is_nested(field.type):
            raise InvalidInput(f"{filename}, column {field.name}: holds lists or records, not plain values; "
                               "flatten it to text before importing.", field=field.name)
    return Source(frame=table.to_pandas(), format="parquet", unit="row")
