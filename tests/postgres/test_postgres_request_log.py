"""Replicas on several hosts share the request log through PostgreSQL, and rollout judges their union.

Runs on the throwaway cluster of test_postgres.py (skipped without PostgreSQL's server binaries on a developer
machine, failing in CI, where .ci/run installs them). The replicas are forked processes, each opening its own
log with ``open_request_log`` as a serving process does.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from log_writers import endless, start
from monitor_helpers import request, ship, traffic
from sqlalchemy import select
from test_postgres import pg, pg_url  # noqa: F401  (the cluster, and a fresh seeded schema on it)

from core.rollout import logs, rollout
from core.serving.requestlog import DatabaseRequestLog, RequestLog, log_dir, open_request_log
from core.store.models import RequestLogRow, table_of

WAIT_S = 120.0  # a guard against a hung replica, never a figure under test


@pytest.fixture
def engine(pg, pg_url, monkeypatch):  # noqa: F811  (conftest's session, demo and gated then run on PostgreSQL)
    from core.store import config, db

    monkeypatch.setenv("DATABASE_URL", pg_url)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    yield pg
    db.get_engine.cache_clear()
    config.get_settings.cache_clear()


def table_ids(engine, prefix: str) -> list[str]:
    table = table_of(RequestLogRow)
    with engine.connect() as conn:
        records = conn.execute(select(table.c.record).order_by(table.c.id)).scalars().all()
    return [r["request_id"] for r in records if r["request_id"].startswith(prefix)]


def test_replicas_write_to_the_table_and_rollout_judges_their_union(session, demo, gated, engine, tmp_path):
    shipped = ship(session, demo, gated)
    rollout.start(session, actor=demo["oscar"], project=shipped)
    records = traffic(240, stage="shadow", disagree_every=6)

    def replica():
        log = open_request_log(shipped.id, batch_size=16, flush_ms=50)
        assert isinstance(log, DatabaseRequestLog)
        log.sibling("refused").write({"request_id": "turned-away", "status": 401})  # never traffic
        return log

    streams = [records[0:100], records[100:200]]
    writers = start(replica, streams, tmp_path)
    writers += start(lambda: RequestLog(log_dir(shipped.id)), [records[200:]], tmp_path / "files")  # a file log
    for w in writers:
        w.finish()

    read = logs.read_log(shipped.id)
    assert (read.table_rows, read.files, read.torn_lines) == (200, 1, 0)
    assert sorted(read.frame["request_id"]) == sorted(r["request_id"] for r in records)
    check = rollout.check_advance(session, project_id=shipped.id)
    by_name = {c.name: c for c in check.criteria}
    assert check.n_requests == 240 and by_name["requests"].status == "PASS"
    assert by_name["student-teacher agreement"].value == pytest.approx(1 - 40 / 240)
    assert len(logs.read_requests(shipped.id, since=records[230]["ts"])) == 10


def test_a_killed_replica_loses_only_what_it_had_not_inserted(session, demo, moderation, engine, tmp_path):
    """A replica writing each record at once (batch of 1) loses no answered request; a batching replica loses
    its unflushed tail only: what is in the table is the start of what it wrote, in order."""
    project = moderation.id
    at_once, batched = (start(lambda: open_request_log(project, batch_size=1), [endless(0, _shadow)], tmp_path)
                        + start(lambda: open_request_log(project, batch_size=25, flush_ms=600_000),
                                [endless(1, _shadow)], tmp_path / "b"))
    at_once.wait_for(60)
    batched.wait_for(60)
    deadline = time.monotonic() + WAIT_S
    while len(table_ids(engine, "w1-")) < 25:  # the first batch is in
        assert time.monotonic() < deadline, "the batching replica never flushed"
        time.sleep(0.01)
    at_once.kill()
    batched.kill()

    acked, stored = at_once.acked(), table_ids(engine, "w0-")
    assert set(acked) <= set(stored) and len(stored) - len(acked) <= 1
    acked, stored = batched.acked(), table_ids(engine, "w1-")
    assert stored == [f"w1-{i}" for i in range(len(stored))]  # the start of what it wrote, in order
    assert 25 <= len(stored) <= len(acked) + 1  # (+1: a record inserted, its answer not yet sent)
    assert len(logs.read_requests(project)) == len(table_ids(engine, "w"))


def _shadow(i: int) -> dict:
    record = request(i, stage="shadow", ts=datetime.now(UTC))
    del record["ts"]  # stamped when written
    return record
