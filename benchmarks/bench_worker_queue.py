"""Benchmark: claiming jobs with two workers on a real PostgreSQL server, Stillroom's queue against procrastinate.

Figures, all in the same run, on the same throwaway PostgreSQL cluster (or DATABASE_URL's server if it is one):
- Stillroom's claim-by-UPDATE queue (core.store.worker.claim_next: ``SELECT ... FOR UPDATE SKIP LOCKED`` and a
  conditional UPDATE, in SQLAlchemy) with two worker processes claiming N jobs, each claim followed by a finish
  without an audit event (what procrastinate's finish does), then the same with the audit event every Stillroom
  job's finish appends (the real cost);
- procrastinate (a well-kept PostgreSQL task queue) with two worker processes: its own ``fetch_job`` (a stored
  procedure) and ``finish_job`` on its own tables and connection pool;
- the same two workers on Stillroom's embedded SQLite file (procrastinate has no SQLite backend).
Per queue: the wall time per claim over both workers (its inverse, claims per second, beside it), and each claim's
latency (p50, p95). Every job must be claimed
exactly once; the run stops with an error otherwise. Run: ``.venv/bin/python benchmarks/bench_worker_queue.py
[--quick]``. Without PostgreSQL's server binaries (initdb, pg_ctl) and no DATABASE_URL, it says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORKERS = 2
KIND = "train"  # any kind: nothing runs, the jobs are only claimed and finished


@contextlib.contextmanager
def postgres(root: Path) -> Iterator[str]:
    """DATABASE_URL when it names PostgreSQL, else a throwaway cluster on 127.0.0.1 (as tests/postgres does)."""
    given = os.environ.get("DATABASE_URL", "")
    if given.startswith("postgresql"):
        yield given
        return
    found = {n: shutil.which(n) or (sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{n}")) or [None])[-1]
             for n in ("initdb", "pg_ctl")}
    if not all(found.values()):
        sys.exit("PostgreSQL's server binaries (initdb, pg_ctl) are not installed and DATABASE_URL names no "
                 "PostgreSQL server: apt-get install postgresql, or set DATABASE_URL.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    subprocess.run(as_user + [found["initdb"], "-D", str(root / "pg"), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [found["pg_ctl"], "-D", str(root / "pg"), "-l", str(root / "pg.log"), "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [found["pg_ctl"], "-D", str(root / "pg"), "-m", "immediate", "stop"],
                       capture_output=True)


# --------------------------------------------------------------------------- Stillroom's queue


def seed_jobs(url: str, n: int) -> None:
    """A fresh schema with one person, one project and ``n`` jobs handed to the workers."""
    from sqlalchemy import insert, text
    from sqlmodel import Session

    from core.store import audit
    from core.store.db import init_db, make_engine
    from core.store.models import Job, Project, User

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    init_db(engine)
    with Session(engine) as s:
        user = User(username="bench", display_name="Bench", password_hash="-")
        s.add(user)
        s.flush()
        project = Project(name="Bench", description="")
        s.add(project)
        s.flush()
        audit.record(s, actor=user, action="bench.seed", entity="project", entity_id=project.id)
        s.execute(insert(Job), [{"project_id": project.id, "kind": KIND, "params": {}, "result": {},
                                 "created_by": user.id, "for_workers": True} for _ in range(n)])
        s.commit()
    engine.dispose()


def stillroom_worker(url: str, with_event: bool, start: float, out: multiprocessing.Queue) -> None:
    from sqlalchemy import update
    from sqlmodel import Session, col

    from core.store import audit
    from core.store.db import make_engine
    from core.store.models import Job
    from core.store.worker import QueueRules, claim_next, worker_id

    engine, me = make_engine(url), worker_id()
    rules = QueueRules(stale_after=timedelta(minutes=10), max_attempts=3)
    claimed, latencies = [], []
    while time.time() < start:
        time.sleep(0.001)
    while True:
        t0 = time.perf_counter()
        claim = claim_next(engine, worker=me, rules=rules)
        latencies.append(time.perf_counter() - t0)
        if claim is None:
            break
        claimed.append(claim.job_id)
        with Session(engine) as s:  # the finish: the row as core.store.jobs._finish writes it
            s.execute(update(Job).where(col(Job.id) == claim.job_id, col(Job.worker) == me)
                      .values(status="done", progress=1.0))
            if with_event:
                audit.record(s, actor="bench", action="job.done", entity="job", entity_id=claim.job_id,
                             payload={"kind": KIND, "worker": me})
            s.commit()
    out.put((claimed, latencies[:-1], time.perf_counter()))


# --------------------------------------------------------------------------- procrastinate


def procrastinate_app(url: str):
    import procrastinate

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="bench")
    def bench() -> None:  # never run: the benchmark claims and finishes
        return None

    return app, bench


def seed_procrastinate(url: str, n: int) -> None:
    app, bench = procrastinate_app(url)
    with app.open():
        app.schema_manager.apply_schema()
        bench.batch_defer(*({} for _ in range(n)))


def procrastinate_worker(url: str, start: float, out: multiprocessing.Queue) -> None:
    from procrastinate import jobs as pjobs

    async def main() -> tuple[list[int], list[float]]:
        app, _ = procrastinate_app(url)
        claimed, latencies = [], []
        async with app.open_async():
            manager = app.job_manager
            me = await manager.register_worker()
            while time.time() < start:
                await asyncio.sleep(0.001)
            while True:
                t0 = time.perf_counter()
                job = await manager.fetch_job(queues=None, worker_id=me)
                latencies.append(time.perf_counter() - t0)
                if job is None:
                    break
                claimed.append(int(job.id or 0))
                await manager.finish_job(job, status=pjobs.Status.SUCCEEDED, delete_job=False)
            await manager.unregister_worker(me)
        return claimed, latencies[:-1]

    claimed, latencies = asyncio.run(main())
    out.put((claimed, latencies, time.perf_counter()))


# --------------------------------------------------------------------------- measuring


def race(target, args: tuple, n: int) -> tuple[float, float, float]:
    """Two worker processes start together and claim until the queue is empty: (claims/s, p50 ms, p95 ms)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 1.0
    procs = [ctx.Process(target=target, args=(*args, start, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    t0 = time.perf_counter() + (start - time.time())
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    claimed = [j for r in results for j in r[0]]
    if len(claimed) != n or len(set(claimed)) != n:
        sys.exit(f"{target.__name__}: {len(claimed)} claims of {len(set(claimed))} distinct jobs, not {n}")
    if any(not r[0] for r in results):
        print(f"  note: one {target.__name__} process claimed nothing (the other emptied the queue first)")
    latencies = sorted(x for r in results for x in r[1])
    wall = max(r[2] for r in results) - t0
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return n / wall, statistics.median(latencies) * 1000, p95 * 1000


def show(label: str, figures: tuple[float, float, float]) -> None:
    rate, p50, p95 = figures
    print(f"  {label + ' wall per claim':<58} {1000 / rate:>10,.3f} ms  ({rate:,.1f} claims/s, both workers)")
    print(f"  {label + ' claim p50':<58} {p50:>10,.3f} ms")
    print(f"  {label + ' claim p95':<58} {p95:>10,.3f} ms")


def dependencies() -> str:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        wanted = [r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("~")[0].strip()
                  for r in requires("procrastinate") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return "procrastinate is not installed"
    return ", ".join(sorted(wanted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 jobs instead of 2,000")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    os.environ.setdefault("STILLROOM_TOKEN_FILE", os.devnull)
    print(f"Worker queue: {n} jobs claimed by {WORKERS} worker processes (load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs)")
    root = Path(tempfile.mkdtemp(prefix="stillroom-bench-queue-"))
    try:
        os.environ["STILLROOM_DATA_DIR"] = str(root)
        with postgres(root) as url:
            seed_jobs(url, n)
            ours = race(stillroom_worker, (url, False), n)
            seed_jobs(url, n)
            ours_audited = race(stillroom_worker, (url, True), n)
            try:
                import procrastinate  # noqa: F401
            except ImportError:
                theirs = None
            else:
                seed_procrastinate(url, n)
                theirs = race(procrastinate_worker, (url,), n)
        sqlite_url = f"sqlite:///{root / 'bench.db'}"
        seed_jobs(sqlite_url, n)
        on_sqlite = race(stillroom_worker, (sqlite_url, False), n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    show("Stillroom claim-by-UPDATE, PostgreSQL:", ours)
    show("Stillroom, PostgreSQL, finish with its audit event:", ours_audited)
    if theirs is None:
        print("  procrastinate: not installed (pip install procrastinate), no comparison")
    else:
        show("procrastinate 3 (fetch_job/finish_job), PostgreSQL:", theirs)
        print(f"  {'ratio Stillroom / procrastinate claims/s':<58} {ours[0] / theirs[0]:>10,.2f}x")
        print(f"  {'ratio procrastinate / Stillroom claim p50':<58} {theirs[1] / ours[1]:>10,.2f}x")
    show("Stillroom claim-by-UPDATE, SQLite (WAL):", on_sqlite)
    print(f"  procrastinate's dependencies: {dependencies()}")
    print("  same transaction as the audit chain: Stillroom yes (one SQLAlchemy session); procrastinate no (its own "
          "psycopg pool and tables)")
    print("  works on the embedded SQLite default: Stillroom yes; procrastinate no (PostgreSQL only)")


if __name__ == "__main__":
    main()
