"""Teacher outputs produced elsewhere, imported from a CSV, JSONL or Parquet file.

Columns: id, label, and optionally confidence, probs (a JSON list in the run's
label order) or one ``prob_<label>`` column per label, and raw. Every row is
checked before anything is stored; an error names the row, the column and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from core.domain.errors import InvalidInput
from core.domain.textsafe import known_value
from core.teacher.outputs import Prediction, check_labels, to_frame

MAX_BYTES = 500 * 1024 * 1024
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PROB_PREFIXES = ("prob_", "prob:")


def read_outputs(path: Path | str, *, dataset_ids: Collection[str], labels: Sequence[str] | None = None,
                 dataset_name: str = "the dataset", drop_foreign: bool = False) -> tuple[pd.DataFrame, list[str], int]:
    """The file as a teacher-run table, its label list and how many foreign rows were dropped.

    A row whose id is not in the dataset (say, outputs made before deduplication) is
    refused with the count of such rows, or dropped and counted with ``drop_foreign``.
    Any other bad cell is refused naming its row and column.
    """
    path = Path(path)
    raw = _read(path)
    prob_cols = [c for c in raw.columns if c.lower().startswith(PROB_PREFIXES)]
    labels = _labels(path, raw, prob_cols, labels)
    ids = set(map(str, dataset_ids))
    # An id our CSV export quoted ('=ID0) names the dataset's id (=ID0): read it back as that id.
    records = [{**row, "id": known_value(_clean_id(row["id"]), ids)} if _present(row.get("id")) else row
               for row in raw.to_dict("records")]
    foreign = _foreign_rows(records, ids)
    if foreign and not drop_foreign:
        n, row_id = foreign[0]
        raise InvalidInput(f"{len(foreign):,} of the {len(records):,} rows of {path.name} are not rows of "
                           f"{dataset_name} (the first: row {n}, id {row_id!r}); import them into the dataset they "
                           "belong to, or drop those rows (the count is recorded with the run).", field="id")
    skip = {n for n, _ in foreign}
    seen: dict[str, int] = {}
    out_ids, predictions = [], []
    for n, row in enumerate(records, start=1):
        if n in skip:
            continue
        out_ids.append(_id(row, n, seen))
        predictions.append(_prediction(row, n, labels, prob_cols))
    if not out_ids:
        raise InvalidInput(f"none of the rows of {path.name} is a row of {dataset_name}: import the outputs into the "
                           "dataset they belong to.", field="id")
    return to_frame(out_ids, predictions), labels, len(foreign)


def _foreign_rows(records: list[dict], ids: set[str]) -> list[tuple[int, str]]:
    """(row number, id) of every row whose id is given but not a row of the dataset."""
    out = []
    for n, row in enumerate(records, start=1):
        if _present(row.get("id")):
            row_id = _clean_id(row["id"])
            if row_id not in ids:
                out.append((n, row_id))
    return out


def _read(path: Path) -> pd.DataFrame:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{path.name}: unknown file type; give a .csv, .jsonl or .parquet file.", field="file")
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file; check the path.", field="file")
    if path.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_BYTES // 2**20} MB: split it and import the parts "
                           "as separate runs.", field="file")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name} is empty: export the teacher's outputs again.", field="file")
    try:
        if fmt == "csv":
            df = _read_csv(path)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        else:
            df = pd.read_parquet(path)
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text: save it as UTF-8 and import it again.",
                           field="file") from None
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 (the readers raise many types; the person needs one sentence)
        raise InvalidInput(f"{path.name} cannot be read as {fmt} ({str(exc)[:150]}): check the file's format.",
                           field="file") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise InvalidInput(f"{path.name} has no rows: export the teacher's outputs again.", field="file")
    lowered = [c.lower() for c in df.columns]
    dupes = sorted({c for c in lowered if lowered.count(c) > 1})
    if dupes:
        raise InvalidInput(f"{path.name}: column {dupes[0]} appears more than once; keep one of them.", field="file")
    df.columns = [c.lower() if c.lower() in ("id", "label", "confidence", "probs", "raw") else c for c in df.columns]
    if "id" not in df.columns:
        raise InvalidInput(f"{path.name} has no id column: add the dataset row's id to every output.", field="id")
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    text = path.read_bytes().decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)), [])
    names = [h.strip().lower() for h in header]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise InvalidInput(f"{path.name}: column {dupes[0]} appears more than once; keep one of them.", field="file")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def _labels(path: Path, df: pd.DataFrame, prob_cols: list[str], given: Sequence[str] | None) -> list[str]:
    if "label" not in df.columns and "probs" not in df.columns and not prob_cols:
        raise InvalidInput(f"{path.name} has no label column (and no probs): add the teacher's label to every row.",
                           field="label")
    if prob_cols:
        from_cols = check_labels([c[5:] for c in prob_cols], where=f"{path.name} probability columns")
        if given is not None and sorted(given) != sorted(from_cols):
            raise InvalidInput(f"{path.name}: the probability columns name {from_cols}, not the labels {list(given)}; "
                               "give one prob_<label> column per label.", field="labels")
        if given is None:
            return from_cols
    if given is not None:
        return check_labels(given)
    if "probs" in df.columns and df["probs"].map(_present).any():
        raise InvalidInput(f"{path.name} has a probs column but no label order: pass the labels in the order of "
                           "the probabilities (--labels a,b,c).", field="labels")
    found = sorted({str(v).strip() for v in df.get("label", pd.Series(dtype=str)) if _present(v)})
    return check_labels(found, where=f"the labels found in {path.name}")


def _present(value) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return not (isinstance(value, str) and not value.strip())


def _clean_id(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()


def _id(row: dict, n: int, seen: dict[str, int]) -> str:
    value = row.get("id")
    if not _present(value):
        raise InvalidInput(f"row {n}, column id: the cell is empty; give every row the id of its dataset row.",
                           field="id")
    row_id = _clean_id(value)
    if row_id in seen:
        raise InvalidInput(f"row {n}, column id: {row_id!r} appears again (first at row {seen[row_id]}); keep one "
                           "output per id.", field="id")
    seen[row_id] = n
    return row_id


def _prediction(row: dict, n: int, labels: list[str], prob_cols: list[str]) -> Prediction:
    probs = _probs(row, n, labels, prob_cols)
    label = str(row["label"]).strip() if _present(row.get("label")) else None
    if label is None and probs is None:
        raise InvalidInput(f"row {n}, column label: the cell is empty and the row has no probabilities; fill in the "
                           "teacher's label or drop the row.", field="label")
    if label is not None and label not in labels:
        raise InvalidInput(f"row {n}, column label: {label!r} is not one of the labels ({', '.join(labels)}); fix "
                           "the label or pass the full label set with --labels.", field="label")
    if label is None:
        label = labels[max(range(len(labels)), key=probs.__getitem__)]
    confidence = _confidence(row.get("confidence"), n)
    if confidence is None and probs is not None:
        confidence = probs[labels.index(label)]
    raw = str(row["raw"]) if _present(row.get("raw")) else ""
    return Prediction(label=label, confidence=confidence, probs=probs, raw=raw)


def _confidence(value, n: int) -> float | None:
    if not _present(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (0.0 <= number <= 1.0):
        raise InvalidInput(f"row {n}, column confidence: {value!r} is not a number between 0 and 1; write it like "
                           "0.87 or leave the cell empty.", field="confidence")
    return number


def _probs(row: dict, n: int, labels: list[str], prob_cols: list[str]) -> list[float] | None:
    if prob_cols:
        by_label = {c[5:].strip(): c for c in prob_cols}
        values, where = [row.get(by_label[label]) for label in labels], "the prob_<label> columns"
        if not any(_present(v) for v in values):
            return None
    else:
        value = row.get("probs")
        if not _present(value) and not isinstance(value, list | tuple):
            return None
        values, where = value, "column probs"
        if isinstance(value, str):
            try:
                values = json.loads(value)
            except json.JSONDecodeError:
                values = None
    fix = f"give {len(labels)} non-negative numbers, one per label in the order {', '.join(labels)}"
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidInput(f"row {n}, {where}: not a list of numbers; {fix}.", field="probs") from None
    total = sum(numbers)
    if len(numbers) != len(labels) or any(not math.isfinite(x) or x < 0 for x in numbers) or total <= 0:
        raise InvalidInput(f"row {n}, {where}: {len(numbers)} values that are not a distribution; {fix}.",
                           field="probs")
    return [x / total for x in numbers]
