"""Reading the request log that ``stillroom serve`` appends to, and summarising live traffic from it.

The log is JSON Lines, one file per UTC day and writing process: ``requests-YYYYMMDD-HOST-PID.jsonl`` (the
older single-process name ``requests-YYYYMMDD.jsonl`` is read too). Every file of the day is read, so rollout and
monitoring judge the union of all workers' traffic. When the database is PostgreSQL, replicas on several hosts
insert their requests into its ``request_log`` table instead, and those rows join the union.

A process killed mid-write can leave a partial line: it is skipped (and counted, ``LogRead.torn_lines``) rather
than allowed to hide the rest of the day.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from core.store.artifacts import data_dir
from core.store.config import get_settings
from core.store.db import get_engine
from core.store.models import RequestLogRow, table_of

COLUMNS = ("ts", "request_id", "input_sha256", "input_chars", "slices", "stage", "served_by", "student_label",
           "student_confidence", "teacher_label", "teacher_asked", "reason", "latency_ms")
FALLBACK_REASONS = ("below-threshold", "must-escalate")
TRAFFIC = "requests"  # the prefix (and table kind) of answered traffic; "refused" never counts as traffic
_DAY_FILE = re.compile(r"^(?P<prefix>[a-z]+)-(?P<day>\d{8})(?:-(?P<writer>[A-Za-z0-9_.-]+))?\.jsonl$")
log = logging.getLogger(__name__)


def log_dir(project_id: int) -> Path:
    return data_dir() / "artifacts" / f"project-{project_id}" / "serving"


def day_file(prefix: str, day: str, writer: str) -> str:
    """The file one writing process appends to on one UTC day (``writer``: its host and process id)."""
    return f"{prefix}-{day}-{writer}.jsonl"


def shared_url() -> str | None:
    """The database the request log is shared through: the configured one when it is PostgreSQL, else None
    (SQLite, the embedded default: the log stays in the JSONL files beside the artifacts)."""
    url = get_settings().db_url
    return url if make_url(url).get_backend_name() == "postgresql" else None


def _day_files(folder: Path, start_day: str | None) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = _DAY_FILE.match(path.name)
        if m and m["prefix"] == TRAFFIC and (start_day is None or m["day"] >= start_day):
            found.append(path)
    return sorted(found)


def _read_file(path: Path) -> tuple[pd.DataFrame, int]:
    """The records of one file and how many of its lines are torn (cut off, or glued to a cut-off one)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return pd.DataFrame(), 0
    try:
        return pd.read_json(io.StringIO(text), lines=True, dtype=False), 0
    except ValueError:
        pass
    records, torn = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            records.append(obj)
        else:
            torn += 1
    return pd.DataFrame.from_records(records), torn


def _table_records(engine: Engine, project_id: int, start: pd.Timestamp | None) -> list[dict]:
    """The project's traffic rows in the shared table, each as its record with the row's timestamp."""
    table = table_of(RequestLogRow)
    query = select(table.c.ts, table.c.record).where(table.c.project_id == project_id, table.c.kind == TRAFFIC)
    if start is not None:
        query = query.where(table.c.ts >= start.to_pydatetime())
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(table.c.id)).all()
    return [{**record, "ts": ts.isoformat()} for ts, record in rows]


def as_utc(since: datetime | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(since)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


@dataclass(frozen=True)
class LogRead:
    """What reading the log found: the requests, and what was skipped or joined to get them."""

    frame: pd.DataFrame  # every request (from ``since`` on), oldest first, in the contract's columns
    torn_lines: int  # lines skipped: cut off by a killed writer (or glued to such a line)
    files: int  # day files read (one per writing process and day)
    table_rows: int  # rows read from the shared PostgreSQL table (0 on SQLite)


def read_log(project_id: int, *, since: datetime | str | None = None) -> LogRead:
    """The union of every writer's requests: each worker's day files, and the shared table on PostgreSQL."""
    start = as_utc(since) if since is not None else None
    files = _day_files(log_dir(project_id), start.strftime("%Y%m%d") if start is not None else None)
    frames, torn = [], 0
    for path in files:
        frame, cut = _read_file(path)
        frames.append(frame)
        torn += cut
    rows = _table_records(get_engine(), project_id, start) if shared_url() is not None else []
    frames.append(pd.DataFrame.from_records(rows))
    if torn:
        log.warning("request log of project %s: skipped %s torn line(s) (a writer killed mid-line)", project_id,
                    torn)
    return LogRead(frame=_frame([f for f in frames if len(f)], start), torn_lines=torn, files=len(files),
                   table_rows=len(rows))


def read_requests(project_id: int, *, since: datetime | str | None = None) -> pd.DataFrame:
    """Every logged request of the project (from ``since`` on), oldest first, in the contract's columns."""
    return read_log(project_id, since=since).frame


def _frame(frames: list[pd.DataFrame], start: pd.Timestamp | None) -> pd.DataFrame:
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in COLUMNS:
        if column not in df.columns:
            df[column] = pd.Series(dtype=object)
    df = df[list(COLUMNS)].copy()
    df["ts"] = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
    df = df[df["ts"].notna()]
    if start is not None:
        df = df[df["ts"] >= start]
    df["stage"] = df["stage"].map(lambda s: None if s is None else str(s))
    df["teacher_asked"] = df["teacher_asked"].fillna(False).astype(bool)
    df["slices"] = df["slices"].map(lambda s: s if isinstance(s, dict) else {})
    for column in ("input_chars", "student_confidence", "latency_ms"):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def slice_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The slice fields of each request as columns (one per slice name), aligned with ``df``."""
    return pd.DataFrame(df["slices"].tolist(), index=df.index) if len(df) else pd.DataFrame(index=df.index)


def asked(df: pd.DataFrame) -> pd.DataFrame:
    """Requests the teacher also answered: where student-teacher agreement can be measured."""
    return df[df["teacher_asked"] & df["teacher_label"].notna() & df["student_label"].notna()]


def agreement(df: pd.DataFrame) -> float | None:
    both = asked(df)
    return float((both["student_label"] == both["teacher_label"]).mean()) if len(both) else None


def fallback_mask(df: pd.DataFrame, *, threshold: float | None = None,
                  must_escalate: list[str] | tuple[str, ...] = ()) -> pd.Series:
    """Requests the student would not answer: under the threshold or a must-escalate label.

    Judged from the student's own figures when the threshold is known, so shadow traffic (where the
    teacher serves everything) shows the fallback rate the student would have had; else from the logged reason.
    """
    if threshold is None:
        return df["reason"].isin(FALLBACK_REASONS)
    return (df["student_confidence"] < threshold) | df["student_label"].isin(list(must_escalate))


def fallback_rate(df: pd.DataFrame, **kwargs) -> float | None:
    judged = df[df["student_confidence"].notna()] if kwargs.get("threshold") is not None else df[
        df["reason"] != "not-in-percentage"]
    return float(fallback_mask(judged, **kwargs).mean()) if len(judged) else None


def slice_agreement_over_time(df: pd.DataFrame, freq: str = "1h") -> pd.DataFrame:
    """Per time bucket and slice value: teacher-asked requests and the agreement on them (for a chart)."""
    both = asked(df)
    columns = ["bucket", "slice", "asked", "agreement"]
    if both.empty:
        return pd.DataFrame(columns=columns)
    slices = slice_frame(both)
    agree = (both["student_label"] == both["teacher_label"]).astype(float)
    bucket = both["ts"].dt.floor(freq)
    parts = [pd.DataFrame({"bucket": bucket, "slice": column + "=" + slices[column].astype(str), "agree": agree})
             for column in slices.columns]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = (pd.concat(parts).groupby(["bucket", "slice"], sort=True)["agree"].agg(["size", "mean"])
           .reset_index().rename(columns={"size": "asked", "mean": "agreement"}))
    return out[columns]


@dataclass(frozen=True)
class TrafficSummary:
    overall: dict
    over_time: pd.DataFrame  # per bucket: requests, fallback_rate, p50_ms, p95_ms, mean_confidence, agreement
    slices: pd.DataFrame  # column, value, requests, asked, agreement
    confidence: pd.DataFrame  # bin_left, bin_right, requests


def _figures(part: pd.DataFrame, **kwargs) -> dict:
    lat = part["latency_ms"].dropna()
    return {"requests": len(part), "fallback_rate": fallback_rate(part, **kwargs),
            "p50_ms": float(lat.quantile(0.5)) if len(lat) else None,
            "p95_ms": float(lat.quantile(0.95)) if len(lat) else None,
            "mean_confidence": float(part["student_confidence"].mean()) if part["student_confidence"].notna().any()
            else None,
            "asked": len(asked(part)), "agreement": agreement(part)}


def slice_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per slice value: requests, teacher-asked requests and the agreement on those."""
    rows = []
    slices = slice_frame(df)
    for column in slices.columns:
        for value, part in df.groupby(slices[column].astype(str), sort=True):
            rows.append({"column": column, "value": value, "requests": len(part), "asked": len(asked(part)),
                         "agreement": agreement(part)})
    return pd.DataFrame(rows, columns=["column", "value", "requests", "asked", "agreement"])


def traffic_summary(df: pd.DataFrame, freq: str = "1h", *, threshold: float | None = None,
                    must_escalate: list[str] | tuple[str, ...] = (), bins: int = 20) -> TrafficSummary:
    kwargs = {"threshold": threshold, "must_escalate": must_escalate}
    buckets = [{"bucket": bucket, **_figures(part, **kwargs)}
               for bucket, part in df.groupby(df["ts"].dt.floor(freq), sort=True)] if len(df) else []
    counts, edges = np.histogram(df["student_confidence"].dropna(), bins=bins, range=(0.0, 1.0))
    return TrafficSummary(
        overall=_figures(df, **kwargs),
        over_time=pd.DataFrame(buckets, columns=["bucket", "requests", "fallback_rate", "p50_ms", "p95_ms",
                                                 "mean_confidence", "asked", "agreement"]),
        slices=slice_agreement(df),
        confidence=pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "requests": counts}),
    )
