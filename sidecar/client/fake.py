"""`FakeSidecar`: the client's interface (`SidecarApi`) in memory, for tests.

Nothing runs by itself: a submitted job stays queued until the test says what happens
to it. `emit` publishes one of its events (to every open stream that follows the job,
and into its status), `finish` ends it, `deliver` sends any event as it is (a done
replayed after a restart, say), `drop_streams` ends the open streams as a lost
connection does, `unreachable` makes every call fail as a sidecar that is gone, and
`fail` scripts the next error of one method. Streams follow jobs as the sidecar's do:
every job until a subscribe; a newly named job gets its events so far. With `local`
set it plays a sidecar on this machine: `register_file` reads the file, and a job with
an output file that `finish` ends done with a `result` has those bytes written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..schema import (
    Cancelled,
    Done,
    EngineInfo,
    ErrorDetail,
    Failed,
    Health,
    ImageInfo,
    JobCreated,
    JobEvent,
    JobList,
    JobPatch,
    JobRequest,
    JobState,
    JobStatus,
    PrecomputeRequest,
    PrecomputeStarted,
    Priority,
    Progress,
    QueueCounts,
    Queued,
    Requeued,
    ResultQuery,
    SkinTone,
    StageEvent,
    Started,
    StoreUsage,
)
from .errors import CONNECTION_FAILED, SidecarError, parse_request
from .messages import CancelAccepted, SocketMessage, Subscribed

_EVENTS = {
    "queued": Queued,
    "started": Started,
    "stage": StageEvent,
    "progress": Progress,
    "requeued": Requeued,
    "done": Done,
    "failed": Failed,
    "cancelled": Cancelled,
}
_STATE_OF = {"queued": JobState.queued, "requeued": JobState.queued, "started": JobState.running}


def _now() -> datetime:
    return datetime.now(UTC)


class FakeEventStream:
    """One open event stream of a FakeSidecar (an `EventStream`)."""

    def __init__(self, sidecar: FakeSidecar) -> None:
        self._sidecar = sidecar
        self._inbox: asyncio.Queue[SocketMessage | None] = asyncio.Queue()
        self.follows: set[str] | None = None  # None: every job
        self.sent: dict[str, int] = {}  # job id -> last seq sent on this stream

    def wants(self, job_id: str) -> bool:
        return self.follows is None or job_id in self.follows

    def put(self, message: SocketMessage | None) -> None:
        self._inbox.put_nowait(message)

    def send(self, event: JobEvent) -> None:
        self.sent[event.job_id] = max(event.seq, self.sent.get(event.job_id, -1))
        self.put(SocketMessage(event=event))

    async def subscribe(self, job_ids: Sequence[str]) -> None:
        self._sidecar.check_reachable()
        named = list(dict.fromkeys(job_ids))
        before = self.follows
        self.follows = set(named) or None
        if self.follows is not None:  # a job left out starts over when named again
            self.sent = {k: v for k, v in self.sent.items() if k in self.follows}
        self.put(SocketMessage(reply=Subscribed(type="subscribed", job_ids=sorted(named))))
        for job_id in named:
            if before is None or job_id not in before:
                for event in self._sidecar.history.get(job_id, []):
                    if event.seq > self.sent.get(job_id, -1):
                        self.send(event)

    async def cancel(self, job_id: str) -> None:
        status = await self._sidecar.cancel(job_id)
        reply = CancelAccepted(type="cancel_accepted", job_id=job_id, state=status.state)
        self.put(SocketMessage(reply=reply))

    def __aiter__(self) -> FakeEventStream:
        return self

    async def __anext__(self) -> SocketMessage:
        message = await self._inbox.get()
        if message is None:
            self.put(None)  # stays ended
            raise StopAsyncIteration
        return message


class FakeSidecar:
    """A sidecar in memory with the client's interface; see the module's doc."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.requests: dict[str, JobRequest] = {}
        self.statuses: dict[str, JobStatus] = {}
        self.history: dict[str, list[JobEvent]] = {}
        self.results: dict[str, bytes] = {}  # job id -> what `result` answers
        self.skin_tones: dict[str, tuple[float, float]] = {}  # image id -> (a, b)
        self.calls: list[tuple[str, str]] = []  # (method, id or "") in the order asked
        self.submitted: asyncio.Queue[str] = asyncio.Queue()  # job ids, for a script
        self.on_submit: Callable[[str, JobRequest], None] | None = None
        self.token_taken = True
        self.unreachable = False
        self.local = False  # whether it plays a sidecar that shares this machine's files
        self._failures: dict[str, list[SidecarError]] = {}
        self._streams: list[FakeEventStream] = []

    # -- the script ------------------------------------------------------------------

    def fail(self, method: str, error: SidecarError) -> None:
        """The next call of `method` (e.g. "upload") raises `error`."""
        self._failures.setdefault(method, []).append(error)

    def emit(self, job_id: str, kind: str, **fields: Any) -> JobEvent:
        """Publish the job's next event of type `kind` (queued, started, stage,
        progress, requeued, done, failed, cancelled; its fields as keywords): into its
        status and history, and to every open stream that follows it."""
        history = self.history.setdefault(job_id, [])
        seq = history[-1].seq + 1 if history else 0
        event = _EVENTS[kind](job_id=job_id, seq=seq, ts=_now(), **fields)
        history.append(event)
        self._update_status(event)
        for stream in self._streams:
            if stream.wants(job_id) and seq > stream.sent.get(job_id, -1):
                stream.send(event)
        return event

    def finish(
        self,
        job_id: str,
        state: str = "done",
        *,
        result: bytes | None = None,
        cached: bool = False,
        code: str = "engine_failed",
        message: str = "",
        reason: str | None = None,
    ) -> JobEvent:
        """End the job: its terminal event (`result` is what `result()` then answers)."""
        if result is not None:
            self.results[job_id] = result
            request = self.requests.get(job_id)
            if state == "done" and request is not None and request.output is not None:
                Path(request.output.path).write_bytes(result)  # as the sidecar writes it
        if state == "done":
            return self.emit(job_id, "done", cached=cached, result_url=f"/v1/jobs/{job_id}/result")
        if state == "failed":
            return self.emit(job_id, "failed", error=ErrorDetail(code=code, message=message))
        return self.emit(job_id, "cancelled", reason=reason)

    def deliver(self, event: JobEvent) -> None:
        """Send `event` as it is to every open stream that follows its job (no status
        change, no check of its seq): a replayed or duplicated event."""
        for stream in self._streams:
            if stream.wants(event.job_id):
                stream.send(event)

    def drop_streams(self) -> None:
        """End every open stream, as a lost connection does."""
        for stream in self._streams:
            stream.put(None)
        self._streams.clear()

    def check_reachable(self) -> None:
        if self.unreachable:
            raise SidecarError(CONNECTION_FAILED, "the fake sidecar is unreachable")

    def _call(self, method: str, key: str = "") -> None:
        self.calls.append((method, key))
        self.check_reachable()
        if self._failures.get(method):
            raise self._failures[method].pop(0)

    def _job(self, job_id: str) -> JobStatus:
        if job_id not in self.statuses:
            raise SidecarError("job_not_found", "no such job", status=404)
        return self.statuses[job_id]

    def _update_status(self, event: JobEvent) -> None:
        status = self.statuses.get(event.job_id)
        if status is None:
            return
        changes: dict[str, Any] = {}
        if isinstance(event, Done | Failed | Cancelled):
            changes = {"state": JobState(event.type), "finished_at": event.ts, "position": None}
            changes["error"] = event.error if isinstance(event, Failed) else None
            changes["cached"] = event.cached if isinstance(event, Done) else False
            changes["progress"] = 1.0 if isinstance(event, Done) else status.progress
        elif event.type in _STATE_OF:
            changes = {"state": _STATE_OF[event.type]}
            if isinstance(event, Started):
                changes["started_at"] = event.ts
        elif isinstance(event, Progress):
            changes = {"progress": event.progress, "stage": event.stage, "eta_s": event.eta_s}
        self.statuses[event.job_id] = status.model_copy(update=changes)

    # -- the interface (SidecarApi) ----------------------------------------------------

    async def health(self, timeout_s: float | None = None) -> Health:
        self._call("health")
        states = [status.state for status in self.statuses.values()]
        return Health(
            status="ok",
            version="fake",
            device="memory",
            engines={"fake": EngineInfo(available=True)},
            queue=QueueCounts(queued=states.count("queued"), running=states.count("running")),
            store=StoreUsage(
                used_bytes=sum(len(data) for data in self.images.values()),
                limit_bytes=1 << 40,
                images=len(self.images),
            ),
        )

    async def check_token(self) -> None:
        self._call("check_token")
        if not self.token_taken:
            raise SidecarError("unauthorized", "missing or wrong token", status=401)

    async def upload(self, data: bytes | memoryview, content_type: str) -> ImageInfo:
        """Nothing is decoded: the image is its bytes, 1×1 RGB 8-bit to the answer."""
        self._call("upload")
        body = bytes(data)
        image_id = hashlib.sha256(body).hexdigest()
        self.images[image_id] = body
        return ImageInfo(image_id=image_id, width=1, height=1, channels=3, depth=8)

    async def register_file(self, path: str) -> ImageInfo:
        """The file's bytes are the image, as with `upload`."""
        self._call("register_file", path)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise SidecarError("file_not_found", "no such file", status=404) from None
        except OSError as exc:
            raise SidecarError("file_unreadable", str(exc), status=422) from None
        image_id = hashlib.sha256(data).hexdigest()
        self.images[image_id] = data
        return ImageInfo(image_id=image_id, width=1, height=1, channels=3, depth=8)

    async def upload_pixels(self, pixels: Any) -> ImageInfo:
        height, width, channels = pixels.shape
        info = await self.upload(pixels.tobytes(), "application/octet-stream")
        depth = pixels.dtype.itemsize * 8
        return info.model_copy(
            update={"width": width, "height": height, "channels": channels, "depth": depth}
        )

    async def skin_tone(self, image_id: str) -> SkinTone:
        self._call("skin_tone", image_id)
        if image_id not in self.images:
            raise SidecarError("image_not_found", "no such image", status=404)
        a, b = self.skin_tones.get(image_id, (None, None))
        return SkinTone(image_id=image_id, a=a, b=b)

    async def submit(self, request: JobRequest | Mapping[str, Any]) -> JobCreated:
        parsed = parse_request(JobRequest, request, "request body")
        self._call("submit")
        if parsed.image_id is not None and parsed.image_id not in self.images:
            raise SidecarError("image_not_found", "no such image", status=404)
        job_id = uuid.uuid4().hex
        self.requests[job_id] = parsed
        self.statuses[job_id] = JobStatus(
            job_id=job_id,
            op=parsed.op,
            state=JobState.queued,
            priority=parsed.priority,
            created_at=_now(),
        )
        self.emit(job_id, "queued", position=0)
        if self.on_submit is not None:
            self.on_submit(job_id, parsed)
        self.submitted.put_nowait(job_id)
        status = self.statuses[job_id]
        position = 0 if status.state is JobState.queued else None
        return JobCreated(
            job_id=job_id, state=status.state, position=position, cached=status.cached
        )

    async def status(self, job_id: str) -> JobStatus:
        self._call("status", job_id)
        return self._job(job_id)

    async def list_jobs(self) -> JobList:
        self._call("list_jobs")
        return JobList(jobs=list(self.statuses.values()))

    async def result(
        self,
        job_id: str,
        query: ResultQuery | Mapping[str, Any] | None = None,
        *,
        into: bytearray | None = None,
    ) -> bytes | bytearray:
        parse_request(ResultQuery, query or {}, "query")  # refused as the sidecar would
        self._call("result", job_id)
        status = self._job(job_id)
        if status.state is not JobState.done:
            raise SidecarError("conflict", f"the job is {status.state.value}, not done", status=409)
        if job_id not in self.results:
            raise SidecarError("result_gone", "the test gave no result for this job", status=410)
        if into is None:
            return self.results[job_id]
        into[:] = self.results[job_id]
        return into

    async def cancel(self, job_id: str) -> JobStatus:
        self._call("cancel", job_id)
        status = self._job(job_id)
        if status.state in (JobState.done, JobState.failed):
            raise SidecarError("conflict", f"the job is {status.state.value}", status=409)
        if status.state is not JobState.cancelled:
            self.emit(job_id, "cancelled")
        return self.statuses[job_id]

    async def reprioritise(self, job_id: str, priority: Priority | str) -> JobStatus:
        patch = parse_request(JobPatch, {"priority": priority}, "request body")
        self._call("reprioritise", job_id)
        status = self._job(job_id)
        self.statuses[job_id] = status.model_copy(update={"priority": patch.priority})
        return self.statuses[job_id]

    async def precompute(self, request: PrecomputeRequest | Mapping[str, Any]) -> PrecomputeStarted:
        parsed = parse_request(PrecomputeRequest, request, "request body")
        self._call("precompute")
        return PrecomputeStarted(document_id=parsed.document_id, job_ids=[])

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[FakeEventStream]:
        self._call("events")
        stream = FakeEventStream(self)
        self._streams.append(stream)
        try:
            yield stream
        finally:
            with contextlib.suppress(ValueError):
                self._streams.remove(stream)
