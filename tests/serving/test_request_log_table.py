"""The request log in a database table (PostgreSQL in production, see tests/postgres): records are inserted in
batches, flushed on close, kept for a retry while the database is away, and never let grow without bound."""

from __future__ import annotations

import time

from sqlalchemy import func
from sqlmodel import Session, select

from core.serving import requestlog
from core.serving.requestlog import DatabaseRequestLog
from core.store.db import make_engine
from core.store.models import RequestLogRow

WAIT_S = 120.0  # a guard against a hung flusher, never a figure under test


def rows(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(RequestLogRow)).one()


def wait_for_rows(engine, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while rows(engine) < n:
        assert time.monotonic() < deadline, f"the flusher inserted {rows(engine)} of {n} rows"
        time.sleep(0.01)


def test_records_go_in_by_the_batch_and_the_rest_on_close(engine, demo, moderation):
    log = DatabaseRequestLog(engine, project_id=moderation.id, batch_size=5, flush_ms=600_000)
    for i in range(4):
        log.write({"request_id": f"r{i}"})
    assert rows(engine) == 0  # under a batch, and the timer is ten minutes away
    log.write({"request_id": "r4"})
    wait_for_rows(engine, 5)
    log.write({"request_id": "r5"})
    log.write({"request_id": "r6"})
    assert rows(engine) == 5
    log.close()
    assert rows(engine) == 7
    log.write({"request_id": "late"})  # after close: inserted at once
    assert rows(engine) == 8
    with Session(engine) as s:
        got = s.exec(select(RequestLogRow).order_by(RequestLogRow.id)).all()
    assert [r.record["request_id"] for r in got] == [f"r{i}" for i in range(7)] + ["late"]
    assert {(r.kind, r.project_id) for r in got} == {("requests", moderation.id)}
    assert got[0].record["ts"] and got[0].ts is not None


def test_batch_of_one_is_in_the_table_before_write_returns(engine, demo, moderation):
    log = DatabaseRequestLog(engine, project_id=moderation.id, batch_size=1)
    log.sibling("refused").write({"request_id": "no", "status": 401})
    log.write({"request_id": "a"})
    assert rows(engine) == 2
    with Session(engine) as s:
        assert sorted(s.exec(select(RequestLogRow.kind)).all()) == ["refused", "requests"]


def test_a_database_away_keeps_records_for_the_retry_and_bounds_them(monkeypatch):
    monkeypatch.setattr(requestlog, "MAX_BUFFER", 3)
    away = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    log = DatabaseRequestLog(away, project_id=1, batch_size=100, flush_ms=600_000)
    for i in range(5):
        log.write({"request_id": f"r{i}"})
    assert log.dropped == 2
    try:
        log.flush()
    except Exception:  # noqa: BLE001  (refused: nothing listens there)
        pass
    else:
        raise AssertionError("a flush to a closed port succeeded")
    assert [r["record"]["request_id"] for r in log._buffer] == ["r2", "r3", "r4"]
    log.close()  # says what is lost instead of raising at shutdown
    assert log.dropped == 5 and log._buffer == []


def test_the_flusher_retries_after_an_outage_and_says_so_once(engine, demo, moderation, caplog):
    log = DatabaseRequestLog(engine, project_id=moderation.id, batch_size=2, flush_ms=20)
    real, tries = log._insert, []

    def flaky(batch):
        tries.append(len(batch))
        if len(tries) <= 3:
            raise ConnectionError("the database is away")
        real(batch)

    log._insert = flaky
    log.write({"request_id": "a"})
    log.write({"request_id": "b"})  # a full batch: the flusher tries at once, fails, then waits a tick per retry
    wait_for_rows(engine, 2)
    log.close()
    assert len(tries) >= 4 and rows(engine) == 2  # three failures, then the records went in
    assert len([r for r in caplog.records if "failed; retrying" in r.getMessage()]) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)
