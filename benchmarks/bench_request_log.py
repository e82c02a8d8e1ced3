"""Benchmark: the request log's cost per answered request, and several workers writing at once.

Figures, all in the same run on the same records (the shape ``stillroom serve`` logs):
- the floor: ``json.dumps`` of the line and one ``os.write`` to an ``O_APPEND`` descriptor, nothing else;
- ``RequestLog.write``: the writer every serving process uses (one file per process and day);
- before issue 18: the same line through a line-buffered text file (one shared ``requests-YYYYMMDD.jsonl``);
- W forked workers writing N records between them into their own files, then ``read_log`` reading their union
  back (every record found, no torn line).
Run: ``.venv/bin/python benchmarks/bench_request_log.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def record(i: int) -> dict:
    return {"request_id": f"{i:032x}", "input_sha256": f"{i:064x}", "input_chars": 120 + i % 50,
            "slices": {"category": ("ok", "spam", "insult")[i % 3], "language": "en"}, "stage": "25",
            "served_by": "student", "student_label": "ok", "student_confidence": 0.912345, "teacher_label": None,
            "teacher_asked": False, "reason": "not-in-percentage", "latency_ms": 0.412}


def per_record_us(write: Callable[[dict], None], n: int) -> float:
    """Microseconds per record, which is also milliseconds per 1,000 records (as printed)."""
    records = [record(i) for i in range(n)]
    start = time.perf_counter()
    for r in records:
        write(r)
    return (time.perf_counter() - start) / n * 1e6


def floor(folder: Path, n: int) -> float:
    fd = os.open(folder / "floor.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return per_record_us(lambda r: os.write(fd, (json.dumps(r, separators=(",", ":")) + "\n").encode()), n)
    finally:
        os.close(fd)


def before(folder: Path, n: int) -> float:
    from datetime import UTC, datetime

    with open(folder / "before.jsonl", "a", encoding="utf-8", buffering=1) as f:
        return per_record_us(lambda r: f.write(json.dumps({"ts": datetime.now(UTC).isoformat(), **r},
                                                          ensure_ascii=False, separators=(",", ":")) + "\n"), n)


def _worker(folder: str, first: int, n: int) -> None:
    from core.serving.requestlog import RequestLog

    log = RequestLog(Path(folder))
    for i in range(first, first + n):
        log.write(record(i))
    log.close()


def workers(project_id: int, w: int, n: int) -> tuple[float, float, int, int]:
    """Seconds for W workers to write N records between them, seconds to read the union, records and torn lines
    read back."""
    from core.rollout import logs

    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(str(logs.log_dir(project_id)), k * (n // w), n // w))
             for k in range(w)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wrote = time.perf_counter() - start
    start = time.perf_counter()
    read = logs.read_log(project_id)
    return wrote, time.perf_counter() - start, len(read.frame), read.torn_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, for the smoke test")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    n = 5_000 if args.quick else 200_000
    with tempfile.TemporaryDirectory(prefix="bench-request-log-") as tmp:
        os.environ["STILLROOM_DATA_DIR"] = tmp
        os.environ.pop("DATABASE_URL", None)
        from core.serving.requestlog import RequestLog

        folder = Path(tmp) / "single"
        log = RequestLog(folder)
        ours = per_record_us(log.write, n)
        log.close()
        base, old = floor(folder, n), before(folder, n)
        wrote, read_s, got, torn = workers(1, args.workers, n)
    print(f"request log, {n:,} records, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  floor (json.dumps + one os.write)       {base:10.3f} ms per 1,000 records")
    print(f"  RequestLog.write (file per process)     {ours:10.3f} ms per 1,000 records")
    print(f"  before: line-buffered shared text file  {old:10.3f} ms per 1,000 records")
    print(f"  ratio RequestLog / floor                {ours / base:10.2f}x")
    print(f"  ratio before / RequestLog               {old / ours:10.2f}x")
    print(f"  {args.workers} workers write {n:,} records          {wrote * 1000:10.1f} ms"
          f"  ({n / wrote:,.0f} records/s)")
    print(f"  read_log of their union                 {read_s * 1000:10.1f} ms")
    print(f"  read back: {got:,} of {n // args.workers * args.workers:,} records, {torn} torn lines")
    if got != n // args.workers * args.workers or torn:
        raise SystemExit("the union read back is not what the workers wrote")


if __name__ == "__main__":
    main()
