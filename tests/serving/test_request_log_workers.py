"""The request log with several worker processes: each writes its own day file, killed writers lose no answered
line, a torn line is skipped and counted, and the reader returns the union of every writer's requests."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime

import pytest
from log_writers import endless, start

from core.rollout import logs
from core.serving.requestlog import DatabaseRequestLog, RequestLog, host_name, log_dir, open_request_log

PROJECT = 11


def payload(i: int) -> dict:
    """What writer records carry besides their id: fixed by ``i``, so an accepted line can be checked whole."""
    return {"input_sha256": f"{i:064x}", "input_chars": i % 97, "slices": {"n": str(i % 7)}, "stage": "25",
            "served_by": "student", "student_label": "ok", "student_confidence": 0.5 + (i % 50) / 100,
            "teacher_label": None, "teacher_asked": False, "reason": "sampled", "latency_ms": float(i % 13)}


def finite(writer: int, n: int) -> list[dict]:
    return [{**payload(i), "request_id": f"w{writer}-{i}"} for i in range(n)]


def test_killed_workers_lose_no_answered_line_and_none_is_torn(db_url, tmp_path):
    """Four workers write at once; two are SIGKILLed mid-load. Every line a worker answered is read back once,
    whole; a killed worker adds at most the one line it wrote but had not yet answered."""
    writers = start(lambda: RequestLog(log_dir(PROJECT)), [endless(w, payload) for w in range(2)]
                    + [finite(w, 300) for w in (2, 3)], tmp_path)
    for w in writers[:2]:
        w.wait_for(200)
        w.kill()
    for w in writers[2:]:
        w.finish()
    read = logs.read_log(PROJECT)
    ids = list(read.frame["request_id"])
    assert max(Counter(ids).values()) == 1
    for n, w in enumerate(writers):
        acked, logged = w.acked(), {i for i in ids if i.startswith(f"w{n}-")}
        assert set(acked) <= logged and len(logged - set(acked)) <= (1 if n < 2 else 0)
        assert len(acked) >= (200 if n < 2 else 300)
    for row in read.frame.itertuples():  # no torn line is accepted: every record is the one its writer wrote
        i = int(row.request_id.split("-")[1])
        assert (row.input_sha256, row.slices, row.latency_ms) == (f"{i:064x}", {"n": str(i % 7)}, float(i % 13))
    assert read.files == 4 and len({p.name for p in log_dir(PROJECT).iterdir()}) == 4


def test_a_torn_line_is_skipped_counted_and_not_glued_to_the_next(db_url):
    """A process killed mid-line left half a record in the file its pid names; the next writer of that name
    starts on a fresh line, so its record survives, and the reader counts the torn one."""
    log = RequestLog(log_dir(PROJECT))
    now = datetime.now(UTC)
    path = log.path_for(now.strftime("%Y%m%d"))
    path.write_text(json.dumps({"ts": now.isoformat(), "request_id": "a"}) + "\n" + '{"ts": "2026-', "utf-8")
    log.write({"request_id": "b"}, now=now)
    log.close()
    read = logs.read_log(PROJECT)
    assert list(read.frame["request_id"]) == ["a", "b"] and read.torn_lines == 1


def test_the_reader_joins_old_single_file_names_and_ignores_refusals(db_url):
    folder = log_dir(PROJECT)  # artifacts.project_dir makes it
    now = datetime.now(UTC)
    old = folder / f"requests-{now:%Y%m%d}.jsonl"  # written by a version before issue 18
    old.write_text(json.dumps({"ts": now.isoformat(), "request_id": "old"}) + "\n", "utf-8")
    RequestLog(folder).write({"request_id": "new"}, now=now)
    RequestLog(folder, prefix="refused").write({"request_id": "refused", "status": 401}, now=now)
    (folder / f"requests-{now:%Y%m%d}.jsonl.bak").write_text('{"request_id": "backup"}\n', "utf-8")
    read = logs.read_log(PROJECT)
    assert sorted(read.frame["request_id"]) == ["new", "old"] and read.torn_lines == 0


def test_a_log_made_before_a_fork_writes_the_childs_own_file(db_url, tmp_path):
    log = RequestLog(log_dir(PROJECT))
    log.write({"request_id": "parent"})
    [child] = start(lambda: log, [[{"request_id": "child"}]], tmp_path)
    child.finish()
    log.write({"request_id": "parent-again"})
    log.close()
    by_file = {p.name: [json.loads(x)["request_id"] for x in p.read_text().splitlines()]
               for p in log_dir(PROJECT).iterdir()}
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert by_file[f"requests-{day}-{host_name()}-{os.getpid()}.jsonl"] == ["parent", "parent-again"]
    assert by_file[f"requests-{day}-{host_name()}-{child.process.pid}.jsonl"] == ["child"]


def test_on_sqlite_the_log_is_the_files(db_url):
    log = open_request_log(PROJECT, prefix="refused")
    assert isinstance(log, RequestLog) and log.directory == log_dir(PROJECT) and log.prefix == "refused"
    assert isinstance(log.sibling("requests"), RequestLog) and log.sibling("requests").prefix == "requests"


def test_the_host_name_fits_the_file_pattern(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "web 01/eu:west")
    assert host_name() == "web_01_eu_west"


@pytest.mark.parametrize("batch_size, flush_ms", [(0, 100.0), (10, 0.0)])
def test_database_log_refuses_a_batch_it_cannot_keep(batch_size, flush_ms):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        DatabaseRequestLog(None, project_id=1, batch_size=batch_size, flush_ms=flush_ms)  # type: ignore[arg-type]
