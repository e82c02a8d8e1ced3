"""Bulk seeding and timing helpers shared by the benchmarks.

``seed`` fills a fresh database with many projects (roles assigned, some
qualified, some gates locked) and a long audit chain in one transaction with
executemany, in seconds where going through core would take minutes. Audit
hashes, row hashes, anchors and the checkpoint are written exactly as
``core.store.audit.record`` writes them, so ``verify`` finds an intact record.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from core.demo.seed import ROUTING_QUALIFICATION, routing_gate
from core.domain.gate_spec import GateSpec
from core.domain.hashing import canonical_json
from core.qualify.qualification import QualificationInput, assess
from core.store import audit, config, db, rowhash
from core.store.audit import GENESIS_HASH, event_hash
from core.store.integrity import spec_hash
from core.store.models import (
    AuditAnchor,
    AuditEvent,
    GateVersion,
    Job,
    Project,
    Qualification,
    Role,
    RoleAssignment,
    User,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
PEOPLE_PER_ROLE = 8
# Benchmark accounts only; never a real password.
BENCH_PASSWORD = "bench-password"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TOPICS = ("ticket routing", "comment moderation", "invoice fields", "intent detection",
          "language id", "PII tagging", "refund triage", "search reranking")


@dataclass
class Seeded:
    """What ``seed`` wrote, and the ids a benchmark needs to log in as someone."""

    admin_id: int
    sponsor_id: int
    projects: int
    events: int
    qualified: int
    locked: int
    seconds: float


@dataclass
class _Rows:
    """Rows per table, plus the audit events to chain, in the order they happened."""

    users: list[dict] = field(default_factory=list)
    projects: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    quals: list[dict] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    # (actor, project_id, action, entity, entity_id, payload)
    events: list[tuple[str, int | None, str, str, Any, dict]] = field(default_factory=list)


# --------------------------------------------------------------------------- database


def use_temp_database(directory: Path) -> str:
    """Point settings and the engine cache at a fresh SQLite file under ``directory``.

    Also exported to the environment, so subprocesses and the Streamlit app
    (which read DATABASE_URL) open the same file.
    """
    url = f"sqlite:///{Path(directory) / 'stillroom.db'}"
    os.environ["DATABASE_URL"] = url
    os.environ["STILLROOM_DATA_DIR"] = str(directory)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    return url


def seed(engine: Engine, *, n_projects: int, n_events: int) -> Seeded:
    """Create the schema and fill it; ``n_events`` counts every audit event, structural ones included."""
    if n_projects < 1:
        raise ValueError("seed at least one project.")
    t0 = time.perf_counter()
    db.init_db(engine)
    rows = _Rows()
    _people(rows)
    for i in range(n_projects):
        _project(rows, i)
    if len(rows.events) > n_events:
        raise ValueError(f"{n_projects} projects need at least {len(rows.events)} audit events; asked for {n_events}.")
    _activity(rows, n_projects, n_events - len(rows.events))
    with engine.begin() as conn:
        head = _insert_all(conn, rows)
    audit.append_checkpoint(audit.checkpoint_path(engine), head)
    with engine.begin() as conn:  # fold the WAL into the main file so every run reads the same thing
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Seeded(
        admin_id=1, sponsor_id=2, projects=n_projects, events=n_events,
        qualified=len({q["project_id"] for q in rows.quals}),
        locked=len({g["project_id"] for g in rows.gates}),
        seconds=time.perf_counter() - t0,
    )


def _insert_all(conn: Connection, rows: _Rows) -> dict:
    """Every row, then the events carrying each row's hash as read back, the anchors; returns the head."""
    for model, batch in ((User, rows.users), (Project, rows.projects), (RoleAssignment, rows.roles),
                         (Qualification, rows.quals), (GateVersion, rows.gates), (Job, rows.jobs)):
        if batch:
            conn.execute(insert(model.__table__), batch)
    hashes = {e: rowhash.digests(conn, e) for e in ("user", "project", "role", "qualification", "gate", "job")}
    chain = list(_chain(rows.events, hashes))
    conn.execute(insert(AuditEvent.__table__), chain)
    anchors = [{"event_id": ev["id"], "head_hash": ev["hash"], "entity": audit.ANCHORED_ACTIONS[ev["action"]],
                "entity_id": ev["entity_id"], "created_at": START}
               for ev in chain if ev["action"] in audit.ANCHORED_ACTIONS]
    if anchors:
        conn.execute(insert(AuditAnchor.__table__), anchors)
    return {"event_id": chain[-1]["id"], "head_hash": chain[-1]["hash"], "count": len(chain)}


def _chain(events: Sequence[tuple[str, int | None, str, str, Any, dict]],
           hashes: dict[str, dict[str, str]]) -> Iterator[dict]:
    """Audit rows linked exactly as ``audit.record`` links them, each with its row's hash."""
    prev = GENESIS_HASH
    for n, (actor, pid, action, entity, entity_id, payload) in enumerate(events):
        ts = (START + timedelta(seconds=37 * n)).isoformat(timespec="microseconds")
        body, eid = canonical_json(payload), str(entity_id)
        row_hash = hashes[entity][eid]
        digest = event_hash(prev, ts, actor, pid, action, entity, eid, body, row_hash)
        yield {"id": n + 1, "ts": ts, "actor": actor, "project_id": pid, "action": action, "entity": entity,
               "entity_id": eid, "payload": body, "prev_hash": prev, "hash": digest, "row_hash": row_hash}
        prev = digest


# --------------------------------------------------------------------------- content


def _people(rows: _Rows) -> None:
    """One admin, then PEOPLE_PER_ROLE people per role (ids in that order: the first sponsor is id 2)."""
    password_hash = PasswordHasher().hash(BENCH_PASSWORD)  # argon2 is slow on purpose: hash once
    names = ["admin"] + [f"{role.value}{k:02d}" for role in Role for k in range(PEOPLE_PER_ROLE)]
    for uid, name in enumerate(names, start=1):
        rows.users.append({"id": uid, "username": name, "display_name": name.title(), "password_hash": password_hash,
                           "is_admin": uid == 1, "is_active": True, "created_at": START})
        rows.events.append(("admin", None, "user.create", "user", uid,
                            {"username": name, "display_name": name.title(), "is_admin": uid == 1}))


_ROLE_ORDER = {role: n for n, role in enumerate(Role)}


def _user_id(role: Role, k: int) -> int:
    return 2 + _ROLE_ORDER[role] * PEOPLE_PER_ROLE + k % PEOPLE_PER_ROLE


def _project(rows: _Rows, i: int) -> None:
    """Project i, at a stage that cycles through the cadence (see ``_stage_plan``)."""
    pid = i + 1
    name = f"P{pid:04d} {TOPICS[i % len(TOPICS)]}"
    rows.projects.append({"id": pid, "name": name, "description": f"Distil the {TOPICS[i % len(TOPICS)]} model.",
                          "created_at": START})
    rows.events.append(("admin", pid, "project.create", "project", pid, {"name": name, "description": ""}))
    holders = {Role.SPONSOR: i, Role.DRIVER: i, Role.VALIDATOR: i + 1, Role.OPERATOR: i}
    if i % 7 == 6:  # some projects still miss an operator: the admin is asked to assign one
        del holders[Role.OPERATOR]
    for role, k in holders.items():
        rid = len(rows.roles) + 1
        uid = _user_id(role, k)
        rows.roles.append({"id": rid, "project_id": pid, "user_id": uid, "role": role.value, "assigned_at": START})
        rows.events.append(("admin", pid, "role.assign", "role", rid,
                            {"username": rows.users[uid - 1]["username"], "role": role.value}))
    sponsor = rows.users[_user_id(Role.SPONSOR, i) - 1]
    verdicts, n_gates = _stage_plan(i)
    for verdict in verdicts:
        _qualify(rows, pid, sponsor, verdict)
    for _ in range(n_gates):
        _lock(rows, pid, sponsor)


def _stage_plan(i: int) -> tuple[tuple[str, ...], int]:
    """(qualification verdicts in order, gate versions) for project i."""
    return (
        ((), 0),  # not qualified yet
        (("do-nothing",), 0),  # qualified, sponsor chose to do nothing
        (("proceed",), 0),  # qualified, gate not locked
        (("proceed",), 1),  # gate locked
        (("fix-first", "proceed"), 2),  # requalified, gate versioned
        (("proceed",), 1),
    )[i % 6]


_INPUTS = QualificationInput.model_validate(ROUTING_QUALIFICATION).model_dump(mode="json")
_ASSESSMENT = assess(ROUTING_QUALIFICATION)
_SPEC = GateSpec.model_validate(routing_gate()).model_dump(mode="json")


def _qualify(rows: _Rows, pid: int, sponsor: dict, verdict: str) -> None:
    prev = rows.quals[-1] if rows.quals and rows.quals[-1]["project_id"] == pid else None
    version = 1 + (prev["version"] if prev else 0)
    rationale = "" if verdict == _ASSESSMENT.recommendation else "Other priorities this quarter; revisit later."
    row = {"id": len(rows.quals) + 1, "project_id": pid, "version": version, "inputs": _INPUTS,
           "recommendation": _ASSESSMENT.recommendation.value, "reasons": _ASSESSMENT.reasons + _ASSESSMENT.warnings,
           "payback_months": _ASSESSMENT.payback_months, "verdict": verdict, "rationale": rationale,
           "recorded_by": sponsor["id"], "recorded_at": START}
    rows.quals.append(row)
    rows.events.append((sponsor["username"], pid, "qualification.record", "qualification", row["id"],
                        {"version": version, "recommendation": row["recommendation"], "verdict": verdict,
                         "rationale": rationale, "inputs": _INPUTS}))


def _lock(rows: _Rows, pid: int, sponsor: dict) -> None:
    prev = rows.gates[-1] if rows.gates and rows.gates[-1]["project_id"] == pid else None
    version = 1 + (prev["version"] if prev else 0)
    spec = dict(_SPEC, quality_floor={**_SPEC["quality_floor"], "value": 0.98 - 0.01 * (version - 1)})
    spec_json = canonical_json(spec)
    reason = "" if prev is None else "Relax the floor after the pilot."
    supersedes = prev["content_hash"] if prev else None
    content_hash = spec_hash(project_id=pid, version=version, spec_json=spec_json, reason=reason,
                             supersedes=supersedes)
    row = {"id": len(rows.gates) + 1, "project_id": pid, "version": version, "spec_json": spec_json,
           "content_hash": content_hash, "reason": reason, "supersedes_hash": supersedes,
           "locked_by": sponsor["id"], "locked_at": START}
    rows.gates.append(row)
    rows.events.append((sponsor["username"], pid, "gate.lock", "gate", row["id"],
                        {"version": version, "content_hash": content_hash, "reason": reason,
                         "supersedes": supersedes}))


_PARAMS = {"family": "ngram", "size": "small", "epochs": 4}


def _activity(rows: _Rows, n_projects: int, n: int) -> None:
    """Everyday events (training jobs submitted, then done) spread over the projects, to reach the asked total."""
    for k in range(n):
        pid = 1 + (k // 2) % n_projects
        driver = rows.users[_user_id(Role.DRIVER, pid - 1) - 1]
        if k % 2 == 0:
            rows.jobs.append({"id": len(rows.jobs) + 1, "project_id": pid, "kind": "train", "params": _PARAMS,
                              "status": "done", "progress": 1.0, "message": "", "result": {}, "error": "",
                              "created_by": driver["id"], "created_at": START})
            rows.events.append((driver["username"], pid, "job.submit", "job", len(rows.jobs),
                                {"kind": "train", "params": _PARAMS}))
        else:
            rows.events.append((driver["username"], pid, "job.done", "job", len(rows.jobs),
                                {"kind": "train", "error": ""}))


# --------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    """Wall times in seconds of repeated calls, and what the last call returned."""

    times: list[float]
    result: Any

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def worst(self) -> float:
        return max(self.times)


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 0) -> Timing:
    """Call ``fn`` ``warmup`` times unmeasured, then ``repeat`` times measured."""
    for _ in range(warmup):
        fn()
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return Timing(times, result)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table: the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(title)
    for n, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def page_row(timing: Timing | None, *, page: str, budget_s: float) -> tuple[str, str, str, str]:
    """The table row of a page's median script run against its budget ("skipped" when the page is absent)."""
    budget = f"< {budget_s * 1000:,.0f} ms"
    if timing is None:
        return ("page script run (AppTest)", "skipped", budget, f"{page} not found")
    return ("page script run (AppTest)", ms(timing.median), budget,
            "ok" if timing.median < budget_s else "OVER BUDGET")


def logged_in_app(*, user_id: int, project_id: int | None = None, timeout: float = 60):
    """An AppTest of app.py with the person logged in, as pages._ui.start_session leaves it after a login."""
    import time

    from streamlit.testing.v1 import AppTest  # late: the cold first view is measured with it

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    at.session_state["user_id"] = user_id
    at.session_state["session_epoch"] = 0  # seeded people have never had a password reset
    at.session_state["last_seen"] = time.time()
    if project_id is not None:
        at.session_state["project_id"] = project_id
    return at
