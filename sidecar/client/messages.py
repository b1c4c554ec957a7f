"""What the event stream (`/v1/ws`) carries, parsed into the contract's models: a job's
event (JSON text), a preview (a binary frame: its header and JPEG), or the sidecar's
reply to a client message (`subscribed`, `cancel_accepted`, `error`; docs/api.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union, get_args

from pydantic import Field, TypeAdapter, ValidationError

from ..schema import ErrorDetail, JobEvent, JobState, Model
from ..schema.frames import FrameError, decode_preview_frame
from .errors import BAD_RESPONSE, SidecarError

# A job id the sidecar never hands out (ids are 128 random bits): named in a subscribe
# while no job is watched, since an empty list would follow every job.
NO_JOB = "0" * 32


class Subscribed(Model):
    """The reply to a subscribe: the jobs now followed (none named: every job)."""

    type: Literal["subscribed"]
    job_ids: list[str]


class CancelAccepted(Model):
    """The reply to a cancel message."""

    type: Literal["cancel_accepted"]
    job_id: str
    state: JobState


class SocketError(Model):
    """The reply to a client message the sidecar refused."""

    type: Literal["error"]
    job_id: str | None = None
    error: ErrorDetail


Reply = Subscribed | CancelAccepted | SocketError
_EVENT_TYPES = get_args(get_args(JobEvent)[0])  # Queued, Started, … (the contract's union)
_TEXT = TypeAdapter(
    Annotated[Union[(*_EVENT_TYPES, *get_args(Reply))], Field(discriminator="type")]  # noqa: UP007
)


@dataclass(frozen=True)
class SocketMessage:
    """One message of the event stream: a job's `event` (for a preview frame, its
    header, with the image in `jpeg`) or a `reply`; `size` is its bytes as they came,
    `at` the `time.perf_counter()` of its arrival, before it was parsed."""

    event: JobEvent | None = None
    reply: Reply | None = None
    jpeg: bytes | None = None
    size: int = 0
    at: float = 0.0

    @property
    def job_id(self) -> str | None:
        item = self.event if self.event is not None else self.reply
        return getattr(item, "job_id", None)


def parse_text(text: str, at: float = 0.0) -> SocketMessage:
    """A JSON text message; one that is not the contract's raises `bad_response`."""
    try:
        item = _TEXT.validate_json(text)
    except ValidationError as exc:
        what = f"a socket message that is not the contract's ({exc.error_count()} errors)"
        raise SidecarError(BAD_RESPONSE, what) from None
    size = len(text.encode())
    if isinstance(item, get_args(Reply)):
        return SocketMessage(reply=item, size=size, at=at)
    return SocketMessage(event=item, size=size, at=at)


def parse_frame(data: bytes, at: float = 0.0) -> SocketMessage:
    """A binary preview frame; a malformed one raises `bad_response`."""
    try:
        header, jpeg = decode_preview_frame(data)
    except FrameError as exc:
        raise SidecarError(BAD_RESPONSE, f"a preview frame that is not one: {exc}") from None
    return SocketMessage(event=header, jpeg=jpeg, size=len(data), at=at)
