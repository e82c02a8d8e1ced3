"""``stillroom serve`` under load on loopback: the n-gram student at stage 100 against the same service teacher-only.

Sets up a shipped project in a temporary data directory (a small local transformer teacher trained on a few
thousand generated tickets, an n-gram student distilled here, the sponsor's ship decision, a rollout event),
starts the real service as a subprocess, and drives it with a keep-alive HTTP/1.1 load generator written on
asyncio streams (a client this lean leaves the 2 cores to the server; httpx would spend more CPU than the server).
Figures: requests/s at CONCURRENCY connections for DURATION seconds, latency under that load, and single-request
p50/p95 (one connection, one request at a time). Budget: >= 500 req/s, single p95 < 20 ms, >= 5x teacher-only.
Every request carries a serving token (``Authorization: Bearer``); the student is also measured with ``--no-auth``
in the same run, so the cost of checking the token is the difference between the two rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the shipped-project builders of the serving tests

TEXTS = ["please refund the invoice today", "the app crash again since monday", "reset my password login",
         "charge twice on my payment urgent", "timeout error in the phone app", "my profile email is wrong"]


AUTH = {"header": b""}  # the Authorization line every request sends (empty with --no-auth)


async def _one(reader, writer, body: bytes, host: str) -> float:
    start = time.perf_counter()
    writer.write(b"POST /v1/classify HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: application/json\r\n"
                 + AUTH["header"] + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the service answered {head.splitlines()[0].decode()}")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return time.perf_counter() - start


async def _worker(port: int, k: int, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    while time.perf_counter() < until:
        body = json.dumps({"text": f"{TEXTS[(k + i) % len(TEXTS)]} {k}-{i}", "id": f"w{k}-{i}",
                           "slices": {"queue": "billing"}}).encode()
        latencies.append(await _one(reader, writer, body, "127.0.0.1"))
        i += 1
    writer.close()


def load(port: int, *, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []

    async def go() -> float:
        start = time.perf_counter()
        await asyncio.gather(*[_worker(port, k, start + seconds, latencies) for k in range(concurrency)])
        return time.perf_counter() - start

    elapsed = asyncio.run(go())
    return {"rps": len(latencies) / elapsed, "n": len(latencies), **_pcts(latencies, "load")}


def singles(port: int, *, n: int) -> dict:
    latencies: list[float] = []

    async def go() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(n):
            body = json.dumps({"text": f"{TEXTS[i % len(TEXTS)]} single {i}"}).encode()
            latencies.append(await _one(reader, writer, body, "127.0.0.1"))
        writer.close()

    asyncio.run(go())
    return _pcts(latencies, "single")


def _pcts(latencies: list[float], prefix: str) -> dict:
    q = statistics.quantiles(latencies, n=100)
    return {f"{prefix}_p50_ms": q[49] * 1000, f"{prefix}_p95_ms": q[94] * 1000}


def setup(directory: Path, *, n_tickets: int, teacher_size: str):
    """A database in ``directory`` holding the moderation project shipped with an n-gram student."""
    from eval_helpers import ticket_rows
    from review_helpers import lock_moderation_gate
    from serve_helpers import shipped
    from sqlmodel import Session

    from conftest import good_qualification
    from core.access import people, projects
    from core.demo import seed as demo_mod
    from core.demo.teacher import train_teacher
    from core.qualify import qualification
    from core.store import config, db
    os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'stillroom.db'}"
    os.environ["STILLROOM_DATA_DIR"] = str(directory)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    engine = db.init_db(db.get_engine())
    session = Session(engine, expire_on_commit=False)
    demo_mod.seed(session)
    demo = {p.username: people.get_user(session, p.username) for p in demo_mod.DEMO_PEOPLE}
    project = projects.get_project(session, demo_mod.MODERATION)
    qualification.record(session, actor=demo["sam"], project=project, inputs=good_qualification(), verdict="proceed")
    lock_moderation_gate(session, demo, project)
    started = time.perf_counter()
    teacher = train_teacher(ticket_rows(n_tickets), directory / "teacher", size=teacher_size, epochs=1)
    print(f"teacher: {teacher_size} transformer on {teacher.n_train:,} tickets, held-out accuracy "
          f"{teacher.accuracy:.3f}, {time.perf_counter() - started:.1f} s")
    evaluation = shipped(session, engine, demo, project, directory, teacher_dir=teacher.path)
    return session, demo, project, evaluation


def measure(project_name: str, *, concurrency: int, seconds: float, n_single: int, auth: bool = True) -> dict:
    from serve_helpers import Server

    server = Server(project_name, args=() if auth else ("--no-auth",)).wait(timeout=180)
    AUTH["header"] = f"Authorization: Bearer {server.token}\r\n".encode() if server.token else b""
    try:
        singles(server.port, n=20)  # warm the connection path
        figures = {**load(server.port, concurrency=concurrency, seconds=seconds),
                   **singles(server.port, n=n_single)}
    finally:
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per configuration: a smoke run, not a measurement")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--teacher-size", default=None,
                        help="teacher model size (default: the demo's 4x256 'teacher'; 'small' with --quick)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    from serve_helpers import start_stage

    with tempfile.TemporaryDirectory() as tmp:
        size = args.teacher_size or ("small" if args.quick else "teacher")
        session, demo, project, evaluation = setup(Path(tmp), n_tickets=600 if args.quick else 3000,
                                                   teacher_size=size)
        results = {}
        for stage, auth in (("100", True), ("100", False), ("shadow", True)):
            start_stage(session, actor=demo["oscar"], evaluation=evaluation, stage=stage)
            results[stage if auth else "100-no-auth"] = measure(
                project.name, concurrency=args.concurrency, seconds=seconds, n_single=200 if args.quick else 1000,
                auth=auth)
        session.close()
    student, teacher, open_student = results["100"], results["shadow"], results["100-no-auth"]
    ratio = student["rps"] / teacher["rps"]
    print(f"\n{args.concurrency} connections, {seconds:g} s per configuration, loopback")
    print(f"{'configuration':32} {'req/s':>9} {'load p50':>10} {'load p95':>10} {'single p50':>11} {'single p95':>11}")
    for name, r in (("student at stage 100", student), ("  the same with --no-auth", open_student),
                    ("teacher-only (stage shadow)", teacher)):
        print(f"{name:32} {r['rps']:9,.1f} {r['load_p50_ms']:8.2f}ms {r['load_p95_ms']:8.2f}ms "
              f"{r['single_p50_ms']:9.2f}ms {r['single_p95_ms']:9.2f}ms")
    print(f"  ratio student / teacher-only req/s   {ratio:.1f}x")
    print(f"  token check: {student['rps'] / open_student['rps']:.2f}x the req/s without auth")
    ok = student["rps"] >= 500 and student["single_p95_ms"] < 20 and ratio >= 5
    print(f"budget (>= 500 req/s, single p95 < 20 ms, >= 5x teacher-only): {'met' if ok else 'MISSED'}")
    if args.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
