"""A job as the scheduler sees it."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..schema import ErrorDetail, JobRequest, JobState, JobStatus, Priority
from ..schema import events as ev
from .store import StoredJob

PRIORITY_RANK = {Priority.active: 0, Priority.hero: 1, Priority.normal: 2, Priority.background: 3}
PREEMPTIBLE = frozenset({Priority.normal, Priority.background})


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return secrets.token_hex(16)


@dataclass(eq=False)
class Job:
    """A job's request and where it stands. Only the scheduler changes `state` (and
    the fields that go with it); everyone else reads."""

    job_id: str
    request: JobRequest
    priority: Priority
    order: int  # submission number: FIFO within a priority
    seed: int
    created_at: datetime = field(default_factory=now)
    state: JobState = JobState.queued
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: float = 0.0
    stage: str | None = None
    eta_s: float | None = None
    error: ErrorDetail | None = None
    cached: bool = False
    result_id: str | None = None
    last_seq: int = -1
    cancel_requested: bool = False
    finishing: bool = False  # the engine is done and the result is being stored
    cancel_reason: str | None = None  # set when the sidecar cancelled it (superseded)
    precompute: bool = False  # readies stages for later Applies; no result, not persisted
    run_seconds: float = 0.0  # time spent running, across pre-emptions
    # the engine's own state from a pre-empted run (see RunInput.resume); opaque here
    resume: object | None = None
    # set once the job is in the job store (or never will be: precompute); a job whose
    # image is still being written runs at once and is recorded once the image is
    recorded: threading.Event = field(default_factory=lambda: _set(threading.Event()))

    @property
    def sort_key(self) -> tuple[int, int]:
        return PRIORITY_RANK[self.priority], self.order

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq

    def end_event(self) -> tuple[type[ev.Done | ev.Failed | ev.Cancelled], dict[str, Any]]:
        """The event that tells how the job ended, and its fields."""
        if self.state is JobState.done:
            result_url = f"/v1/jobs/{self.job_id}/result"
            return ev.Done, {"cached": self.cached, "result_url": result_url}
        if self.state is JobState.failed:
            error = self.error or ErrorDetail(code="internal_error", message="the job failed")
            return ev.Failed, {"error": error}
        return ev.Cancelled, {"reason": self.cancel_reason}

    def status(self, position: int | None) -> JobStatus:
        return JobStatus(
            job_id=self.job_id,
            op=self.request.op,
            state=self.state,
            priority=self.priority,
            position=position,
            progress=self.progress,
            stage=self.stage,
            eta_s=self.eta_s,
            error=self.error,
            cached=self.cached,
            precompute=self.precompute,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


def restored(stored: StoredJob) -> Job:
    """A job as the job store kept it over a restart: a finished one as it ended, an
    unfinished one queued (it runs again from the start)."""
    finished = stored.state not in (JobState.queued, JobState.running)
    return Job(
        stored.job_id,
        stored.request,
        stored.priority,
        stored.order,
        stored.seed,
        created_at=stored.created_at,
        state=stored.state if finished else JobState.queued,
        result_id=stored.result_id if finished else None,
        error=stored.error if finished else None,
        progress=1.0 if stored.state is JobState.done else 0.0,
        # seq must keep increasing across the restart (clients drop what they have
        # seen); the counter was in memory, so go on from the clock in ms, which is
        # past any count a job reaches in one run
        last_seq=time.time_ns() // 1_000_000,
    )
