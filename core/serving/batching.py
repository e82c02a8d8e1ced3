"""Micro-batching: requests that arrive within a few milliseconds of each other share one model call.

A transformer's forward pass costs about the same for one text as for a dozen (the fixed cost is Python and the
framework, not arithmetic), so under load one call per request wastes most of the machine. A ``Batcher`` holds
each request's text in a queue; one task per event loop takes the first waiting text, waits up to ``max_wait_s``
for more (or until ``max_batch`` are waiting), and runs the model once on all of them in a worker thread, so the
event loop keeps reading requests meanwhile. Texts that arrive while a batch runs form the next one. Each caller
gets its own row of the answer, or the exception the call raised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchStats:
    """What the batcher did, for /health and the benchmark: calls made and texts answered."""

    calls: int = 0
    texts: int = 0
    largest: int = 0

    def as_dict(self) -> dict:
        return {"calls": self.calls, "texts": self.texts, "largest": self.largest,
                "mean": round(self.texts / self.calls, 2) if self.calls else 0.0}


@dataclass
class Batcher:
    """``await batcher(text)`` -> ``fn([... text ...])[i]``, with the texts of concurrent callers in one call.

    ``fn`` takes a list of texts and returns a sequence aligned with it (a probability array, predictions).
    """

    fn: Callable[[list[str]], Sequence[Any]]
    max_batch: int = 32
    max_wait_s: float = 0.002
    stats: BatchStats = field(default_factory=BatchStats)
    _waiting: deque = field(default_factory=deque, init=False, repr=False)
    _wake: asyncio.Event | None = field(default=None, init=False, repr=False)
    _full: asyncio.Event | None = field(default=None, init=False, repr=False)
    _task: asyncio.Task | None = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)

    async def __call__(self, text: str) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        future = loop.create_future()
        self._waiting.append((text, future))
        self._wake.set()
        if len(self._waiting) >= self.max_batch:
            self._full.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """One collecting task per event loop (tests run each client in a fresh loop)."""
        self._loop, self._waiting = loop, deque()
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self.max_wait_s > 0 and len(self._waiting) < self.max_batch:
                with suppress(TimeoutError):  # waited long enough: run what has come
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
            if not self._waiting:
                self._wake.clear()
            self._full.clear()
            await self._answer(batch)

    async def _answer(self, batch: list[tuple[str, asyncio.Future]]) -> None:
        live = [(text, fut) for text, fut in batch if not fut.done()]  # a caller that went away needs no answer
        if not live:
            return
        try:
            rows = await asyncio.to_thread(self.fn, [text for text, _ in live])
        except Exception as exc:  # noqa: BLE001  (each caller decides what a failed call means for it)
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.stats.calls += 1
        self.stats.texts += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for (_, fut), row in zip(live, rows, strict=True):
            if not fut.done():
                fut.set_result(row)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
