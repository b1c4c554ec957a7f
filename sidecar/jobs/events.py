"""The event bus: every job event goes to every subscriber without ever waiting.

Each subscriber has its own bounded buffer. Previews and progress are latest-wins
(a newer one replaces the one still waiting, per job); state events (queued,
started, stage, done, failed, cancelled, requeued) are never dropped: a subscriber
that lets `MAX_PENDING_STATE` of them pile up is closed instead, and reconnects
(SSE resumes with Last-Event-ID). So a slow or vanished client costs the worker
nothing and memory stays bounded.

The bus also keeps, per job, its state events and latest progress and preview (for
SSE resume and the WebSocket's replay to a late subscriber) and its latest few preview
JPEGs (for GET /v1/jobs/{id}/previews/{seq}), for the most recent jobs.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ..schema import PreviewHeader, Progress
from ..schema.events import Cancelled, Done, Failed

COALESCED = (PreviewHeader, Progress)
TERMINAL = (Done, Failed, Cancelled)
MAX_PENDING_STATE = 5_000
MAX_PENDING_MARKS = 100  # `follow` marks a subscriber has not taken yet
PREVIEWS_PER_JOB = 4
JOBS_REMEMBERED = 2_000


@dataclass
class Published:
    event: object  # one of the JobEvent models
    jpeg: bytes | None = None

    @property
    def job_id(self) -> str:
        return self.event.job_id  # type: ignore[attr-defined]


class Subscription:
    """One client's view of the stream (used on the event loop only)."""

    def __init__(self, job_ids: set[str] | None = None) -> None:
        self.job_ids = job_ids
        self.closed = False
        self.overflowed = False
        self._items: OrderedDict[tuple, Published] = OrderedDict()
        self._state_pending = 0
        self._marks = 0
        self._mark_keys = itertools.count()
        self.delivered = 0
        self._wake = asyncio.Event()

    def offer(self, item: Published) -> None:
        if self.closed or (self.job_ids is not None and item.job_id not in self.job_ids):
            return
        event = item.event
        if isinstance(event, COALESCED):
            key: tuple = (item.job_id, event.type)
            self._items.pop(key, None)  # the newer one goes to the back of the line
        else:
            key = (item.job_id, event.seq)  # type: ignore[attr-defined]
            self._state_pending += 1
            if self._state_pending > MAX_PENDING_STATE:
                self.overflowed = True
                self.close()
                return
        self._items[key] = item
        self._wake.set()

    def wants(self, job_id: str) -> bool:
        return self.job_ids is None or job_id in self.job_ids

    def follow(self, job_ids: set[str] | None, mark: object) -> None:
        """Offer only `job_ids`' events from now on (None: every job's). Queued items of
        other jobs are dropped, and `mark` is queued behind the rest: `get` hands it out
        as a Published whose event is `mark`, and every event after it was published
        after the switch. A subscriber with `MAX_PENDING_MARKS` marks untaken is closed
        as one with too many state events is."""
        if self.closed:
            return
        self.job_ids = job_ids
        if job_ids is not None:
            for key in [k for k in self._items if k[0] is not None and k[0] not in job_ids]:
                if not isinstance(self._items.pop(key).event, COALESCED):
                    self._state_pending -= 1
        self._marks += 1
        if self._marks > MAX_PENDING_MARKS:
            self.overflowed = True
            self.close()
            return
        self._items[(None, next(self._mark_keys))] = Published(mark)
        self._wake.set()

    async def get(self) -> Published | None:
        """The next item, or None once closed and drained."""
        while not self._items:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        key, item = self._items.popitem(last=False)
        if key[0] is None:
            self._marks -= 1
        elif not isinstance(item.event, COALESCED):
            self._state_pending -= 1
        self.delivered += 1
        return item

    def close(self) -> None:
        self.closed = True
        if self.overflowed:
            self._items.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._items)


@dataclass
class _JobRecord:
    history: list[object] = field(default_factory=list)  # state events + latest coalesced
    previews: OrderedDict[int, bytes] = field(default_factory=OrderedDict)


class EventBus:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subscribers: set[Subscription] = set()
        self._watchers: tuple[Subscription, ...] = ()  # the same, for other threads
        self._jobs: OrderedDict[str, _JobRecord] = OrderedDict()
        self._lock = threading.Lock()  # history is read by handlers, written on the loop

    def publish(self, event: object, jpeg: bytes | None = None) -> None:
        """Thread-safe and non-blocking. Every event, from the worker's thread or the
        loop's own, goes through the loop's callback queue: callers publish under the
        scheduler's lock in `seq` order, and one FIFO keeps that order (dispatching the
        loop's own events at once would overtake events the worker queued before)."""
        try:
            self._loop.call_soon_threadsafe(self._dispatch, Published(event, jpeg))
        except RuntimeError:  # the loop is closed: the sidecar is gone, so is every client
            pass

    def subscribe(self, job_ids: set[str] | None = None) -> Subscription:
        subscription = Subscription(job_ids)
        self._subscribers.add(subscription)
        self._watchers = tuple(self._subscribers)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self._subscribers.discard(subscription)
        self._watchers = tuple(self._subscribers)

    def watching(self, job_id: str) -> bool:
        """Whether a client follows `job_id`'s events now: its previews have someone to
        go to. Safe from any thread (reads a snapshot the loop replaces)."""
        return any(not each.closed and each.wants(job_id) for each in self._watchers)

    def history(self, job_id: str, after_seq: int = -1) -> list[object]:
        with self._lock:
            record = self._jobs.get(job_id)
            events = list(record.history) if record else []
        return [e for e in events if e.seq > after_seq]  # type: ignore[attr-defined]

    def replay(self, job_id: str, after_seq: int = -1) -> list[Published]:
        """What the bus keeps of a job after `after_seq`, as it was published and in seq
        order: its state events, its latest progress and its latest preview with the
        JPEG (left out should that JPEG be gone)."""
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return []
            items = [
                Published(event, record.previews.get(event.seq))  # type: ignore[attr-defined]
                if isinstance(event, PreviewHeader)
                else Published(event)
                for event in record.history
                if event.seq > after_seq  # type: ignore[attr-defined]
            ]
        items = [i for i in items if i.jpeg is not None or not isinstance(i.event, PreviewHeader)]
        return sorted(items, key=lambda item: item.event.seq)  # type: ignore[attr-defined]

    def preview(self, job_id: str, seq: int) -> bytes | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return record.previews.get(seq) if record else None

    def close_all(self) -> None:
        for subscription in list(self._subscribers):
            self.unsubscribe(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _dispatch(self, item: Published) -> None:
        self._remember(item)
        for subscription in list(self._subscribers):
            subscription.offer(item)
            if subscription.closed:
                self._subscribers.discard(subscription)
                self._watchers = tuple(self._subscribers)

    def _remember(self, item: Published) -> None:
        event = item.event
        with self._lock:
            record = self._jobs.get(item.job_id)
            if record is None:
                record = self._jobs[item.job_id] = _JobRecord()
                while len(self._jobs) > JOBS_REMEMBERED:
                    self._jobs.popitem(last=False)
            if isinstance(event, COALESCED):
                record.history = [
                    e for e in record.history if type(e) is not type(event)
                ]  # keep only the newest of each coalesced kind
            record.history.append(event)
            if item.jpeg is not None:
                record.previews[event.seq] = item.jpeg  # type: ignore[attr-defined]
                while len(record.previews) > PREVIEWS_PER_JOB:
                    record.previews.popitem(last=False)
