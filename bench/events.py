"""One event stream of the product (sidecar.client), kept whole for measuring: every
job's event with the time it arrived and its size as sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

from sidecar.client import SidecarClient, SocketMessage

from . import stalls


class EventLog:
    """`async with EventLog(client) as log:` a WebSocket of its own that follows every
    job; `arrivals` holds each job event's message (`at`: its arrival, `size`: its
    bytes, `event`, `jpeg` for a preview frame).

    The stream is read all the time, so aiohttp answers the sidecar's heartbeat pings
    (autoping) while the harness waits. When the stream ends, or `fail` is called (the
    harness does when the sidecar's process exits), every wait still pending fails at
    once, and every later one too, with `context()` (the end of the sidecar's log)."""

    def __init__(self, client: SidecarClient, context: Callable[[], str] | None = None) -> None:
        self._client = client
        self._context = context
        self.arrivals: list[SocketMessage] = []
        self.frames = 0
        self.frame_bytes = 0
        self.bytes_by_job: Counter[str] = Counter()  # every message of a job, as sent
        self._waiters: list[tuple[str, tuple[str, ...], asyncio.Future]] = []
        self.closed: str | None = None  # why the stream ended, once it has

    async def __aenter__(self) -> EventLog:
        self._watch = stalls.watching()
        await self._watch.__aenter__()
        try:
            self._stream_context = self._client.events()
            self._stream = await self._stream_context.__aenter__()
        except BaseException:
            await self._watch.__aexit__(None, None, None)
            raise
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self._stream_context.__aexit__(None, None, None)
        finally:
            await self._watch.__aexit__(None, None, None)

    async def _read(self) -> None:
        """Reads until the stream ends; then every wait still pending fails at once (a
        log that missed events cannot time a run, and must not wait 900 s for them)."""
        try:
            await self._follow()
            reason = "the sidecar closed the event stream"
        except Exception as exc:  # noqa: BLE001  (any end of the stream ends the waits)
            reason = f"the event stream failed: {exc!r}"
        self.fail(reason)

    def fail(self, reason: str) -> None:
        """End every wait, pending and later, with `reason` (the first one given) and
        the context (the end of the sidecar's log)."""
        if self.closed is None:
            context = self._context() if self._context is not None else ""
            self.closed = f"{reason}\n{context}" if context else reason
        waiters, self._waiters = self._waiters, []
        for _, _, future in waiters:
            if not future.done():
                future.set_exception(ConnectionError(self.closed))

    async def _follow(self) -> None:
        async for message in self._stream:
            event = message.event
            if event is None:  # a reply: this log sends nothing, so none comes
                continue
            if message.jpeg is not None:
                self.frames += 1
                self.frame_bytes += message.size
            self.bytes_by_job[event.job_id] += message.size
            self.arrivals.append(message)
            for waiter in list(self._waiters):
                job_id, kinds, future = waiter
                if event.job_id == job_id and event.type in kinds:
                    self._waiters.remove(waiter)
                    if not future.done():
                        future.set_result(message.at)

    def of(self, job_id: str) -> list[SocketMessage]:
        """Every event of one job so far, in the order it arrived."""
        return [message for message in self.arrivals if message.event.job_id == job_id]

    def expect(self, job_id: str, *kinds: str) -> asyncio.Future:
        """A future with the arrival time (`time.perf_counter()`) of the first event of
        `kinds` for `job_id` (registered up front)."""
        future = asyncio.get_running_loop().create_future()
        for message in self.arrivals:
            if message.event.job_id == job_id and message.event.type in kinds:
                future.set_result(message.at)
                return future
        if self.closed is not None:
            future.set_exception(ConnectionError(self.closed))
            return future
        self._waiters.append((job_id, kinds, future))
        return future
