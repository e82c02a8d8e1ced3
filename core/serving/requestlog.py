"""The request log: one JSON object per request, appended and flushed line by line, one file per UTC day.

One writer per process behind a lock; each line reaches the page cache before the answer is sent, so a killed
process loses no answered request (fsync is not needed for that: the page cache outlives the process).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from core.store import artifacts

KEYS = ("ts", "request_id", "input_sha256", "input_chars", "slices", "stage", "served_by", "student_label",
        "student_confidence", "teacher_label", "teacher_asked", "reason", "latency_ms")


def log_dir(project_id: int) -> Path:
    return artifacts.project_dir(project_id, "serving")


class RequestLog:
    """Appends records to ``PREFIX-YYYYMMDD.jsonl`` under ``directory``, switching files when the day changes.

    The prefix is ``requests`` for answered traffic (what rollout is judged on) and ``refused`` for the requests
    the service turned away (400, 401, 408, 413, 503), which must never count as traffic.
    """

    def __init__(self, directory: Path, *, prefix: str = "requests"):
        self.directory = Path(directory)
        self.prefix = prefix
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._day: str | None = None
        self._file: TextIO | None = None

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.prefix}-{day}.jsonl"

    def write(self, record: dict, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        line = json.dumps({"ts": now.isoformat(), **record}, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            day = now.strftime("%Y%m%d")
            if day != self._day or self._file is None:
                self._open(day)
            self._file.write(line)  # line-buffered: this write reaches the OS before it returns

    def _open(self, day: str) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(self.path_for(day), "a", encoding="utf-8", buffering=1)  # noqa: SIM115  (kept open)
        self._day = day

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
