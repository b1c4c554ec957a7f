"""A job as the scheduler sees it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..schema import ErrorDetail, JobRequest, JobState, JobStatus, Priority

PRIORITY_RANK = {Priority.active: 0, Priority.hero: 1, Priority.normal: 2, Priority.background: 3}
PREEMPTIBLE = frozenset({Priority.normal, Priority.background})


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return secrets.token_hex(16)


@dataclass(eq=False)
class Job:
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
    saved: dict[str, Any] = field(default_factory=dict)  # engine state kept across runs

    @property
    def sort_key(self) -> tuple[int, int]:
        return PRIORITY_RANK[self.priority], self.order

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq

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
