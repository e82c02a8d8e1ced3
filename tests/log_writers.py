"""Writers of the request log in forked processes, as ``serve --workers N`` runs them: each writes a record, then
"answers" by appending its request id to an acknowledgement file, so the test knows which lines a client saw
answered before it killed the writer."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

WAIT_S = 180.0  # a guard against a hung writer on a loaded machine, never a figure under test


@dataclass
class Writer:
    process: multiprocessing.process.BaseProcess
    acks: Path

    def acked(self) -> list[str]:
        """Request ids answered so far: complete lines only (the writer may die inside the ack write)."""
        text = self.acks.read_text(encoding="utf-8") if self.acks.exists() else ""
        return text.split("\n")[:-1]

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(self.acked()) < n:
            assert self.process.is_alive(), f"writer {self.process.pid} ended after {len(self.acked())} answers"
            assert time.monotonic() < deadline, f"writer {self.process.pid} hung"
            time.sleep(0.01)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        assert self.process.exitcode == -signal.SIGKILL

    def finish(self) -> None:
        self.process.join(WAIT_S)
        assert self.process.exitcode == 0, f"writer {self.process.pid} exited with {self.process.exitcode}"


def _run(make_log: Callable, records: Iterable[dict], acks: Path) -> None:
    log = make_log()
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for record in records:
        now = datetime.fromisoformat(record["ts"]) if "ts" in record else None
        log.write(record, now=now)
        os.write(fd, (record["request_id"] + "\n").encode())  # the answer leaves after the line is written
    log.close()


def start(make_log: Callable, streams: list[Iterable[dict]], folder: Path) -> list[Writer]:
    """One forked process per stream of records, each opening its own log with ``make_log()``."""
    ctx = multiprocessing.get_context("fork")
    folder.mkdir(parents=True, exist_ok=True)
    writers = []
    for i, records in enumerate(streams):
        acks = folder / f"acks-{i}.txt"
        process = ctx.Process(target=_run, args=(make_log, records, acks), daemon=True)
        process.start()
        writers.append(Writer(process, acks))
    return writers


def endless(writer: int, record: Callable[[int], dict]) -> Iterable[dict]:
    """Records ``w<writer>-<i>`` for i = 0, 1, ... until the writer is killed."""
    i = 0
    while True:
        yield {**record(i), "request_id": f"w{writer}-{i}"}
        i += 1
