"""The same governance rules on a real PostgreSQL server (DATABASE_URL=postgresql...).

A throwaway cluster is started on 127.0.0.1 for this module. Without PostgreSQL's
server binaries the module skips on a developer machine and fails in CI, where
.ci/run installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from conftest import good_qualification
from core.access import people, projects
from core.demo import seed as demo
from core.domain.errors import SeparationOfDuties
from core.gate import gate
from core.qualify import qualification
from core.store import integrity, verification
from core.store.db import init_db, make_engine


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        message = "PostgreSQL server binaries not found: apt-get install postgresql to run these tests"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp dir: that one is private to the user running the tests.
    root = Path(tempfile.mkdtemp(prefix="stillroom-pg-"))
    data, port = root / "data", _free_port()
    # PostgreSQL refuses to run as root: run it as the postgres user when we are root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    subprocess.run(as_user + [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(
        as_user + [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                   f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        check=True, capture_output=True,
    )
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        for _ in range(50):
            try:
                make_engine(url).connect().close()
                break
            except Exception:  # noqa: BLE001 (server still starting)
                time.sleep(0.1)
        yield url
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(pg_url, tmp_path, monkeypatch):
    from core.store import config

    # Each test's fresh schema gets its own audit checkpoint file (issue 9).
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path))
    config.get_settings.cache_clear()
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    init_db(engine)
    with Session(engine, expire_on_commit=False) as s:
        demo.seed(s)
    yield engine
    engine.dispose()


def test_demo_governance_flow_on_postgres(pg):
    with Session(pg, expire_on_commit=False) as s:
        sam = people.get_user(s, "sam")
        mod = projects.get_project(s, demo.MODERATION)
        qualification.record(s, actor=sam, project=mod, inputs=good_qualification(), verdict="proceed")
        g = gate.lock(s, actor=sam, project=mod, spec=gate.template("latency"))
        assert integrity.verify_gate(g)
        with pytest.raises(SeparationOfDuties):
            projects.assign_role(s, actor=people.get_user(s, "admin"), project=mod, username="dana",
                                 role="validator")
    report = verification.verify(pg)
    assert report.ok and report.checked > 15


@pytest.mark.parametrize("statement", [
    "UPDATE gate_version SET reason = 'edited'",
    "DELETE FROM gate_version",
    "TRUNCATE audit_event",
    "DELETE FROM qualification",
    "UPDATE audit_event SET actor = 'mallory'",
])
def test_append_only_tables_refuse_raw_sql_on_postgres(pg, statement):
    with pytest.raises(Exception, match="append-only"):
        with pg.begin() as conn:
            conn.execute(text(statement))
    assert verification.verify(pg).ok


def test_tampering_by_a_superuser_is_caught_by_the_chain_on_postgres(pg):
    with pg.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_event SET payload = '{}' WHERE id = 3"))
    report = verification.verify(pg)
    assert (report.ok, report.broken_at) == (False, 3)


def test_rows_changed_behind_their_events_and_a_cut_tail_are_reported_on_postgres(pg):
    with pg.begin() as conn:
        conn.execute(text("UPDATE \"user\" SET is_admin = true WHERE username = 'dana'"))
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_event WHERE id > (SELECT max(id) - 2 FROM audit_event)"))
    report = verification.verify(pg)
    assert not report.ok
    assert any(p.startswith("user #") and "differs from what event #" in p for p in report.problems)
    assert any("no longer has: events were deleted" in p for p in report.problems)
    with Session(pg) as s:
        from core.store import integrity

        assert people.get_user(s, "sam").id in integrity.vouched_ids(s, "user")


def test_verify_since_a_recorded_full_verify_on_postgres(pg):
    """Issue 18: --since reads the events after the recorded one and the rows named since, in PostgreSQL's SQL."""
    recorded = verification.record_verified(pg, verification.verify(pg, files=False))
    with Session(pg) as s:
        projects.create_project(s, actor=people.get_user(s, "admin"), name="After the verify")
    since = verification.verify_since(pg)
    assert since.ok, since.lines()
    assert since.since.record_id == recorded.record_id and since.checked >= 2
    with pg.begin() as conn:
        conn.execute(text("UPDATE project SET description = 'edited' WHERE name = 'After the verify'"))
    assert any(p.startswith("project #") and "differs from what event #" in p
               for p in verification.verify_since(pg).problems)
