"""What a client of the sidecar offers, whichever it is: `SidecarClient` (HTTP and
WebSocket) or `FakeSidecar` (in memory, for tests). Code that drives a sidecar (the
batch, the job tracker) is written against these, so a test can hand it the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ..schema import (
    Health,
    ImageInfo,
    JobCreated,
    JobList,
    JobRequest,
    JobStatus,
    PrecomputeRequest,
    PrecomputeStarted,
    Priority,
    ResultQuery,
    SkinTone,
)
from .messages import SocketMessage


class EventStream(Protocol):
    """The event stream: until a subscribe it carries every job's events. Iterating
    ends when the connection closes; a broken exchange raises SidecarError."""

    async def subscribe(self, job_ids: Sequence[str]) -> None:
        """Follow only these jobs (none: every job); the sidecar then sends each newly
        named job's events so far, then its live ones."""

    async def cancel(self, job_id: str) -> None:
        """Ask the sidecar to cancel a job (its reply comes as a message)."""

    def __aiter__(self) -> AsyncIterator[SocketMessage]: ...


class SidecarApi(Protocol):
    """The sidecar's API, typed (sidecar.schema); every error is a SidecarError with
    the sidecar's stable code."""

    # whether the sidecar shares this machine's files (`register_file`, a job's output)
    local: bool

    async def health(self, timeout_s: float | None = None) -> Health: ...

    async def check_token(self) -> None:
        """Raises `unauthorized` when the sidecar does not take this client's token."""

    async def upload(self, data: bytes | memoryview, content_type: str) -> ImageInfo:
        """An image file (PNG, JPEG, TIFF) as the body."""

    async def register_file(self, path: str) -> ImageInfo:
        """An image file on the sidecar's machine (an absolute path), read by the
        sidecar itself: nothing is uploaded."""

    async def upload_pixels(self, pixels: Any) -> ImageInfo:
        """Raw pixels: an array of shape (height, width, 3 or 4), 8 or 16 bit."""

    async def skin_tone(self, image_id: str) -> SkinTone: ...

    async def submit(self, request: JobRequest | Mapping[str, Any]) -> JobCreated:
        """A mapping is parsed into a JobRequest first: one the sidecar would refuse is
        refused here, as the sidecar words it (`invalid_request`)."""

    async def status(self, job_id: str) -> JobStatus: ...

    async def list_jobs(self) -> JobList: ...

    async def result(
        self,
        job_id: str,
        query: ResultQuery | Mapping[str, Any] | None = None,
        *,
        into: bytearray | None = None,
    ) -> bytes | bytearray:
        """The result's bytes: a PNG or TIFF file, or raw pixels (`format="raw"`),
        optionally blended (`intensity`) and downscaled (`max_side`). With `into`, they
        are read into that buffer (resized to fit), which is returned."""

    async def cancel(self, job_id: str) -> JobStatus: ...

    async def reprioritise(self, job_id: str, priority: Priority | str) -> JobStatus: ...

    async def precompute(
        self, request: PrecomputeRequest | Mapping[str, Any]
    ) -> PrecomputeStarted: ...

    def events(self) -> AbstractAsyncContextManager[EventStream]:
        """`async with client.events() as stream:` the WebSocket, closed on the way out."""
