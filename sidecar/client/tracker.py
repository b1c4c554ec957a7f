"""Following jobs to their end over the event stream, with reconnection and resync.

The stream follows the watched jobs only, named in a subscribe each time one is added;
the sidecar sends a newly named job's events so far, so an end that came before the
submit's answer still arrives. While the stream is down, the watched jobs' statuses
are polled; after every (re)connection they are read once again, so a terminal event
sent while no stream was open is not missed. A job ends once: a second terminal event
(replayed after a restart or a reconnect, or seen by a poll too) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..schema import TERMINAL_STATES, Cancelled, Done, Failed, JobCreated, JobEvent, JobStatus
from .contract import EventStream, SidecarApi
from .errors import SidecarError
from .messages import NO_JOB

POLL_S = 0.5  # how often jobs are polled while the stream is down
GIVE_UP_S = 15.0  # a sidecar unreachable this long fails the jobs still waited on
# Jobs named in one subscribe message: 36 bytes each, well under the sidecar's 256 KiB
# message limit. Past it the tracker follows every job and checks each new one once.
SUBSCRIBE_MAX = 5_000


@dataclass(frozen=True)
class JobEnd:
    """How a job ended, from its terminal event or its status."""

    state: str  # done | failed | cancelled
    cached: bool = False
    code: str | None = None
    message: str = ""

    @classmethod
    def of_event(cls, event: Done | Failed | Cancelled) -> JobEnd:
        if isinstance(event, Cancelled):
            return cls("cancelled", code="cancelled", message=event.reason or "")
        if isinstance(event, Failed):
            return cls("failed", code=event.error.code, message=event.error.message)
        return cls("done", cached=event.cached)

    @classmethod
    def of_status(cls, status: JobStatus | JobCreated) -> JobEnd:
        """From a status, or from a submit's answer (the result cache's `done`)."""
        state = status.state.value
        if state == "cancelled":
            return cls(state, code="cancelled")
        error = getattr(status, "error", None)
        if error is None:
            return cls(state, status.cached)
        return cls(state, status.cached, error.code, error.message)


class JobTracker:
    """Follows the jobs given to `watch` to their end: events over the stream, polling
    while it is down. Ended jobs come out of `ended` as (key, job_id, JobEnd), where key
    is what the caller gave `watch`; callers may put their own items there too. Every
    other event of a watched job goes to `on_event(key, event)`."""

    def __init__(self, client: SidecarApi, on_event: Callable[[object, JobEvent], None]) -> None:
        self.client = client
        self.on_event = on_event
        self.ended: asyncio.Queue = asyncio.Queue()
        self.watched: dict[str, object] = {}
        self.connected = asyncio.Event()  # set once the first connection was tried
        self._stream: EventStream | None = None
        self._subscribing = asyncio.Lock()  # one subscribe message at a time, latest last

    async def watch(self, job_id: str, key: object) -> None:
        self.watched[job_id] = key
        await self._subscribe()
        if len(self.watched) > SUBSCRIBE_MAX:  # following every job: it may have ended
            with contextlib.suppress(SidecarError):
                await self._poll([job_id])

    async def _subscribe(self) -> None:
        """Name every job still watched (or, past SUBSCRIBE_MAX, every job) to the
        stream, if it is open. (A job's events that reached the stream before it was
        named are dropped here: the first subscribe on a stream leaves it out, so the
        sidecar replays them in full when it is named.)"""
        async with self._subscribing:
            if self._stream is None:
                return
            job_ids = list(self.watched) or [NO_JOB]
            if len(job_ids) > SUBSCRIBE_MAX:
                job_ids = []
            with contextlib.suppress(SidecarError):
                await self._stream.subscribe(job_ids)

    async def run(self) -> None:
        """Until cancelled: connect, resync, follow; reconnect when the stream ends."""
        unreachable_since: float | None = None
        while True:
            try:
                async with self.client.events() as stream:
                    self._stream = stream
                    await self._subscribe()
                    self.connected.set()
                    await self._poll()  # resync: what ended while no stream was open
                    unreachable_since = None
                    async for message in stream:
                        if message.event is not None:
                            self._event(message.event)
            except SidecarError:
                pass
            finally:
                self._stream = None
            self.connected.set()  # polling stands in until the stream is back
            try:
                await self._poll()
                unreachable_since = None
            except SidecarError:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > GIVE_UP_S:
                    lost = JobEnd("failed", code="sidecar_unreachable", message="connection lost")
                    for job_id in list(self.watched):
                        self._end(job_id, lost)
            await asyncio.sleep(POLL_S)

    def _event(self, event: JobEvent) -> None:
        job_id = event.job_id
        if job_id not in self.watched:  # another client's job, or one already ended
            return
        if isinstance(event, Done | Failed | Cancelled):
            self._end(job_id, JobEnd.of_event(event))
        else:
            self.on_event(self.watched[job_id], event)

    def _end(self, job_id: str, end: JobEnd) -> None:
        # A job leaves `watched` at its first end: a second one finds nothing, so the
        # caller fetches, writes and counts its output once.
        if job_id in self.watched:
            self.ended.put_nowait((self.watched.pop(job_id), job_id, end))

    async def _poll(self, job_ids: list[str] | None = None) -> None:
        for job_id in list(self.watched) if job_ids is None else job_ids:
            if job_id not in self.watched:  # ended meanwhile (an event, an earlier await)
                continue
            try:
                status = await self.client.status(job_id)
            except SidecarError as exc:
                if exc.code != "job_not_found":
                    raise
                self._end(job_id, JobEnd("failed", code="job_not_found", message=exc.message))
                continue
            if status.state in TERMINAL_STATES:
                self._end(job_id, JobEnd.of_status(status))

    async def cancel_all(self, settle_s: float = 3.0) -> None:
        """Cancel every job still watched; wait a little for running ones to stop, so a
        sidecar stopped right after keeps nothing queued for its next start."""
        for job_id in list(self.watched):
            with contextlib.suppress(SidecarError):  # already ended, or forgotten
                await self.client.cancel(job_id)
        deadline = time.monotonic() + settle_s
        while self.watched and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ended.get(), deadline - time.monotonic())
