"""How long the harness's event loop went without running: the longest stall while an
event stream was open. A loop that stalls misses the sidecar's heartbeat (a ping every
20 s, its pong due within 10 s) and the sidecar drops the stream, so blocking work
(numpy, hashing, file reads, synchronous HTTP) belongs in threads.

`async with watching():` ticks every TICK_S while any holder is inside; `longest`
is the most a tick came late since `reset()` (once per module in `bench.__main__`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

TICK_S = 0.05


class _Watch:
    def __init__(self) -> None:
        self.longest = 0.0
        self.watched = False
        self.holders = 0
        self.task: asyncio.Task | None = None

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self.longest = max(self.longest, loop.time() - before - TICK_S)


_WATCH = _Watch()


def reset() -> None:
    _WATCH.longest, _WATCH.watched = 0.0, False


def longest() -> float | None:
    """Seconds: the longest stall seen since `reset()` (None: nothing was watched)."""
    return _WATCH.longest if _WATCH.watched else None


@contextlib.asynccontextmanager
async def watching() -> AsyncIterator[None]:
    """Watch the running loop while inside (one ticker however many are inside)."""
    watch, loop = _WATCH, asyncio.get_running_loop()
    if watch.task is None or watch.task.done() or watch.task.get_loop() is not loop:
        watch.task, watch.holders = loop.create_task(watch.tick()), 0
    watch.holders += 1
    watch.watched = True
    task = watch.task
    try:
        yield
    finally:
        watch.holders -= 1
        if watch.holders == 0 and watch.task is task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            watch.task = None
