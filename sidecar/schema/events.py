"""Events sent over the WebSocket and SSE streams, and client socket messages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from .common import ErrorDetail, Model
from .jobs import JOB_ID_PATTERN

PreviewLevel = Literal["draft", "preview", "refine", "final", "step"]


class _Event(Model):
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    seq: int = Field(ge=0, description="Per job, strictly increasing.")
    ts: AwareDatetime


class Queued(_Event):
    type: Literal["queued"] = "queued"
    position: int = Field(ge=0)


class Started(_Event):
    type: Literal["started"] = "started"


class StageEvent(_Event):
    type: Literal["stage"] = "stage"
    stage: str
    index: int = Field(ge=0)
    count: int = Field(ge=1)


class Progress(_Event):
    type: Literal["progress"] = "progress"
    progress: float = Field(ge=0.0, le=1.0)
    stage: str
    eta_s: float | None = Field(None, ge=0.0)


class PreviewHeader(_Event):
    """Header of a preview. Over the WebSocket it leads a binary frame:
    uint32 big-endian header length | header JSON | JPEG bytes. Over SSE it
    carries `url` instead of bytes."""

    type: Literal["preview"] = "preview"
    level: PreviewLevel
    step: int | None = Field(None, ge=0)
    total_steps: int | None = Field(None, ge=1)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    url: str | None = Field(None, description="SSE only: where to GET the JPEG.")


class Done(_Event):
    type: Literal["done"] = "done"
    cached: bool
    result_url: str


class Failed(_Event):
    type: Literal["failed"] = "failed"
    error: ErrorDetail


class Cancelled(_Event):
    type: Literal["cancelled"] = "cancelled"
    reason: str | None = Field(
        None, description="Set when the sidecar, not a client, cancelled (e.g. superseded)."
    )


class Requeued(_Event):
    type: Literal["requeued"] = "requeued"
    reason: str


JobEvent = Annotated[
    Queued | Started | StageEvent | Progress | PreviewHeader | Done | Failed | Cancelled | Requeued,
    Field(discriminator="type"),
]


class Subscribe(Model):
    """Client → server: only send events for these jobs (empty list: all jobs). After
    the `subscribed` reply, each job newly named gets its events so far (state events,
    latest progress and preview), then live ones; none twice on one socket."""

    type: Literal["subscribe"]
    job_ids: list[Annotated[str, Field(pattern=JOB_ID_PATTERN)]] = Field(max_length=10_000)


class CancelMessage(Model):
    """Client → server: cancel one job by id."""

    type: Literal["cancel"]
    job_id: str = Field(pattern=JOB_ID_PATTERN)


ClientMessage = Annotated[Subscribe | CancelMessage, Field(discriminator="type")]
