"""Benchmark: what notifications cost. ``notify()`` inside a producer's transaction (eight validators told, one
webhook queued) beside the audit event that transaction records anyway; and webhook tries through
``deliver_due`` (claim, POST, log) beside bare ``httpx.post`` calls of the same bodies to the same local
receiver (the floor: what any sender pays for HTTP).
Run: ``.venv/bin/python benchmarks/bench_notify.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import _seed
import httpx
from sqlmodel import Session, select

from core.access import projects
from core.notify import delivery, inbox, webhooks
from core.notify.rules import Kind
from core.store import audit, config
from core.store.db import make_engine
from core.store.models import Notification, Project, User, WebhookDelivery


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def receiver() -> tuple[str, ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/services/bench", server


def validators(session: Session, project: Project) -> None:
    """Eight validators on the project (the seed gives it one), so each event tells eight people."""
    admin = session.exec(select(User).where(User.username == "admin")).one()
    held = projects.roster(session, project_ids=[project.id])[project.id].get("validator", [])
    for name in (f"validator{k:02d}" for k in range(_seed.PEOPLE_PER_ROLE)):
        if name not in held:
            projects.assign_role(session, actor=admin, project=project, username=name, role="validator")


def notify_once(engine, *, project_id: int, actor: User, with_notify: bool) -> None:
    """One producer transaction: its audit event, and (or not) the notify() call beside it."""
    with Session(engine) as s:
        audit.record(s, actor=actor, action="bench.event", entity="bench", project_id=project_id)
        if with_notify:
            inbox.notify(s, kind=Kind.EVALUATION_READY, project_id=project_id, actor=actor, detail="bench")
        s.commit()


def queue(engine, *, subscription_id: int, project_id: int, n: int) -> None:
    with Session(engine) as s:
        s.add_all([WebhookDelivery(subscription_id=subscription_id, kind=Kind.DECISION.value, project_id=project_id,
                                   page="record", text=f"bench decision {i}") for i in range(n)])
        s.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 events and 20 tries: a smoke run.")
    args = parser.parse_args(argv)
    n = 20 if args.quick else 300
    url, server = receiver()
    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        db_url = _seed.use_temp_database(Path(tmp))
        os.environ["STILLROOM_WEBHOOK_URLS"] = url
        config.get_settings.cache_clear()
        engine = make_engine(db_url)
        _seed.seed(engine, n_projects=2, n_events=100)
        with Session(engine, expire_on_commit=False) as s:
            project = s.get_one(Project, 1)
            validators(s, project)
            admin = s.exec(select(User).where(User.username == "admin")).one()
            driver = s.exec(select(User).where(User.username == "driver00")).one()
            # A webhook for another project: queued with every event's check, never posted during the timing.
            webhooks.add(s, actor=admin, url=url, project=s.get_one(Project, 2))
            sub = webhooks.add(s, actor=admin, url=url, kinds=[Kind.DECISION.value], project=project)
        bare = _seed.measure(lambda: notify_once(engine, project_id=1, actor=driver, with_notify=False), n, warmup=3)
        told = _seed.measure(lambda: notify_once(engine, project_id=1, actor=driver, with_notify=True), n, warmup=3)
        with Session(engine) as s:
            per_event = len(s.exec(select(Notification)).all()) / (n + 3)
        queue(engine, subscription_id=sub.id, project_id=1, n=n)
        t0 = time.perf_counter()
        made = delivery.deliver_due(engine)
        sent = time.perf_counter() - t0
        payload = delivery.body(WebhookDelivery(subscription_id=sub.id, kind=Kind.DECISION.value, project_id=1,
                                                page="record", text="bench decision"))
        t0 = time.perf_counter()
        for _ in range(n):
            httpx.post(url, json=payload, timeout=5).raise_for_status()
        raw = time.perf_counter() - t0
        engine.dispose()
    server.shutdown()
    if made != n or per_event != _seed.PEOPLE_PER_ROLE:
        raise SystemExit(f"made {made} tries of {n}, told {per_event} people per event: unlike work.")
    _seed.print_table(
        f"Notifications: {n} events telling {per_event:.0f} validators each, {n} webhook tries to a local receiver; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        [("measure", "time"),
         ("event with its audit record, no notify", _seed.ms(bare.median)),
         ("the same event with notify()", _seed.ms(told.median)),
         ("ratio with / without notify", f"{told.median / bare.median:.2f}x"),
         ("webhook try through deliver_due", _seed.ms(sent / n)),
         ("bare httpx.post of the same body", _seed.ms(raw / n)),
         ("ratio deliver_due / bare post", f"{sent / raw:.2f}x")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
