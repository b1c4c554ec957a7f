"""The product's jobs followed to their end by sidecar.client's JobTracker, on a
WebSocket of its own, for a harness (bench/image_upload.py follows its jobs so)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sidecar.client import JobEnd, JobTracker, SidecarClient
from sidecar.schema import JobCreated

from .harness import Harness
from .sidecar import ServerDied

JOB_TIMEOUT_S = 900.0  # one full-size Apply on a busy 2-core machine takes seconds


class _CountedStreams:
    """The client as the tracker sees it, counting the event streams it opens: more
    than one means the sidecar closed one (a blocked event loop misses heartbeats)."""

    def __init__(self, client: SidecarClient) -> None:
        self._client = client
        self.opened = 0

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator:
        self.opened += 1
        async with self._client.events() as stream:
            yield stream


class Jobs:
    """`async with Jobs(h) as jobs:` the product's jobs followed to their end by
    sidecar.client's JobTracker on a WebSocket of its own. A stream the sidecar closes
    is reopened and the watched jobs' states read again, so a `done` sent meanwhile is
    not lost; a sidecar that stops answering ends the wait within the tracker's 15 s,
    and no wait outlasts `timeout`: each failure says what happened, with the end of
    the sidecar's log."""

    def __init__(self, h: Harness, timeout: float = JOB_TIMEOUT_S) -> None:
        self._h = h
        self.timeout = timeout
        self._client = _CountedStreams(h.client)
        self._ends: dict[str, asyncio.Future[JobEnd]] = {}

    @property
    def reconnects(self) -> int:
        return max(self._client.opened - 1, 0)

    async def __aenter__(self) -> Jobs:
        self._tracker = JobTracker(self._client, on_event=lambda key, event: None)
        self._task = asyncio.create_task(self._tracker.run())
        self._reader = asyncio.create_task(self._read_ends())
        await asyncio.wait_for(self._tracker.connected.wait(), 60)
        return self

    async def __aexit__(self, *exc) -> None:
        for task in (self._reader, self._task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_ends(self) -> None:
        while True:
            _, job_id, end = await self._tracker.ended.get()
            future = self._ends.get(job_id)
            if future is not None and not future.done():
                future.set_result(end)

    def _failure(self, what: str) -> RuntimeError:
        return RuntimeError(f"{what}\n{self._h.product.describe()}")

    async def finished(self, job_id: str) -> JobEnd:
        """The job's end once it is `done`; anything else raises at once."""
        future = self._ends.setdefault(job_id, asyncio.get_running_loop().create_future())
        await self._tracker.watch(job_id, job_id)
        died = self._h.died  # the sidecar's exit ends the wait at once
        await asyncio.wait(
            {future, self._task, died}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if not future.done():
            if died.done():
                raise ServerDied(died.result())
            if self._task.done():
                error = None if self._task.cancelled() else self._task.exception()
                raise self._failure(f"following job {job_id}: the job tracker stopped ({error!r})")
            raise self._failure(
                f"job {job_id} did not end within {self.timeout:.0f} s"
                f" (event stream reopened {self.reconnects} times)"
            )
        end = future.result()
        if end.state != "done":
            raise self._failure(f"job {job_id} ended {end.state}: {end.code} {end.message}")
        return end

    async def apply(self, body: dict) -> JobCreated:
        """POST /v1/jobs and wait for `done` (a result-cache hit is done already)."""
        created = await self._h.submit(body)
        if not created.cached:
            await self.finished(created.job_id)
        return created
