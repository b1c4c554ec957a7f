"""The priority queue of waiting jobs: active > hero > normal (FIFO) > background.

Thread-safe: the event loop submits, reorders and cancels; the worker takes. A
reorder changes only the waiting order; whether the running job must give way is
`should_yield`, asked at each step boundary. The queue only holds jobs: their state
is the scheduler's to change.
"""

from __future__ import annotations

import threading

from ..schema import Priority
from .model import PREEMPTIBLE, Job


class JobQueue:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: dict[str, Job] = {}
        self._closed = False
        self.running: Job | None = None

    def put(self, job: Job) -> None:
        with self._changed:
            self._waiting[job.job_id] = job
            self._changed.notify_all()

    def take(self, timeout: float | None = None) -> Job | None:
        """The most urgent waiting job, out of the queue and the one running now; None
        after `timeout` or once the queue is closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._waiting or self._closed, timeout)
            if self._closed or not self._waiting:
                return None
            job = min(self._waiting.values(), key=lambda j: j.sort_key)
            del self._waiting[job.job_id]
            self.running = job
            return job

    def close(self) -> None:
        """Wake the worker for good (shutdown); waiting jobs stay where they are."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def release(self, job: Job) -> None:
        """The worker is done with `job` (finished, or about to be put back)."""
        with self._changed:
            if self.running is job:
                self.running = None

    def remove(self, job_id: str) -> Job | None:
        """Take a waiting job out (cancel); None if it is not waiting."""
        with self._changed:
            return self._waiting.pop(job_id, None)

    def reprioritise(self, job: Job, priority: Priority) -> None:
        with self._changed:
            job.priority = priority
            self._changed.notify_all()

    def should_yield(self, job: Job) -> bool:
        """True when `job` (running) must give way at this step boundary: to a waiting
        active job if it is normal or background, and to any waiting user job if it
        is background work (which never delays anything else)."""
        if job.priority not in PREEMPTIBLE:
            return False
        with self._changed:
            if job.priority is Priority.background:
                return any(w.priority is not Priority.background for w in self._waiting.values())
            return any(w.priority is Priority.active for w in self._waiting.values())

    def waiting(self) -> list[Job]:
        with self._changed:
            return sorted(self._waiting.values(), key=lambda j: j.sort_key)

    def positions(self) -> dict[str, int]:
        return {job.job_id: index for index, job in enumerate(self.waiting())}

    def counts(self) -> tuple[int, int]:
        with self._changed:
            return len(self._waiting), int(self.running is not None)
