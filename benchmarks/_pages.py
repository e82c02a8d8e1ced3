"""What the page benchmarks print beside their timings: the machine's load, and the time the vouching reads take.

Every governance read goes through ``core.store.vouched``, which asks ``core.store.integrity.vouched_ids`` which
rows the audit chain vouches for; ``vouching`` counts those calls and their time while a measure runs, so a page's
figure says how much of it is the checking.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.store import integrity


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@dataclass
class Vouching:
    calls: int = 0
    seconds: float = 0.0


@contextmanager
def vouching() -> Iterator[Vouching]:
    """Count the ``vouched_ids`` calls (and their wall time) made inside the block, in this process."""
    spent, real = Vouching(), integrity.vouched_ids

    def timed(*args: Any, **kwargs: Any) -> set[int]:
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.calls += 1
            spent.seconds += time.perf_counter() - t0

    integrity.vouched_ids = timed  # vouched.py and integrity.py look it up at each call
    try:
        yield spent
    finally:
        integrity.vouched_ids = real


def vouching_per_call(fn: Callable[[], Any], repeat: int) -> tuple[float, int]:
    """(seconds of vouching per call of ``fn``, vouched_ids calls per call), over ``repeat`` calls."""
    with vouching() as spent:
        for _ in range(repeat):
            fn()
    return spent.seconds / repeat, spent.calls // repeat


def vouching_row(label: str, seconds: float, calls: int, of: float) -> tuple[str, str, str, str]:
    return (label, f"{seconds * 1000:,.1f} ms", "", f"{calls} checks, {seconds / of:.0%} of it")
