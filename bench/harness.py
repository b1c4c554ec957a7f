"""The product and the baseline side by side: a real sidecar and the naive server,
each in its own process, started together and driven over loopback by one client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import numpy as np

from sidecar.client import CONNECTION_FAILED, SidecarClient, SidecarError
from sidecar.schema import TERMINAL_STATES, JobCreated, JobEvent

from .events import EventLog
from .sidecar import NaiveServer, Server, ServerDied, Sidecar

T = TypeVar("T")
DEATH_GRACE_S = 2.0  # after a broken connection, how long to look for the server's exit
B64_PIECE = 3 << 20  # bytes base64-encoded at a time (a multiple of 3: no padding inside)


def event_time(event: JobEvent) -> float:
    """An event's own timestamp (the sidecar's clock), as seconds since the epoch."""
    return event.ts.timestamp()


@dataclass
class Timeline:
    """One product Apply as the client saw it, in seconds after its POST /v1/jobs."""

    job_id: str
    cached: bool
    previews: list[tuple[float, str, int | None, int | None]] = field(default_factory=list)
    done: float = 0.0
    layer: float = 0.0  # the full result's pixels in the client (GET …/result, raw)
    submitted_wall: float = 0.0  # time.time() at the POST

    @property
    def first(self) -> float:
        """First visible pixels: the first preview, or the full result when none came."""
        return self.previews[0][0] if self.previews else self.layer


@dataclass
class NaiveReply:
    seconds: float  # POST /apply to the last byte of the result
    cached: bool
    started_wall: float  # when the naive worker took the Apply (server clock)
    submitted_wall: float
    body: bytes
    shape: tuple[int, int, int]
    dtype: str

    def pixels(self) -> np.ndarray:
        return np.frombuffer(self.body, self.dtype).reshape(self.shape)


class Harness:
    """`async with Harness(root) as h:` h.product and h.naive (the processes), h.client
    (the product's client, sidecar.client), h.events (its event log) and h.session (an
    HTTP session for the naive server, which has no client of its own).

    Nothing here blocks the event loop (encoding and starting and stopping the servers
    run in threads), so the event stream answers the sidecar's heartbeats. A server that
    exits under the harness fails every pending wait at once (h.events, and whatever
    runs through `guard`, which the methods here do), with the end of its log; so does
    a closed event stream; and any failure that leaves the harness carries the end of
    the sidecar's log."""

    def __init__(
        self, root: Path, *product_args: str, naive_model: Path | None = None, naive: bool = True
    ) -> None:
        self.product = Sidecar(root / "product", *product_args)
        self.naive = NaiveServer(root / "naive", naive_model) if naive else None
        self._watchers: list[asyncio.Task] = []
        self._open = contextlib.AsyncExitStack()
        self._layer = bytearray()  # the full results `apply` fetches, one after another

    def _servers(self) -> list[Server]:
        return [s for s in (self.product, self.naive) if s is not None]

    async def __aenter__(self) -> Harness:
        servers = self._servers()
        for server in servers:
            server.start()
        try:
            for server in servers:
                await asyncio.to_thread(server.wait_ready)
        except BaseException:
            for server in servers:
                await asyncio.to_thread(server.stop)
            raise
        # set to what happened (with the end of its log) when a server exits under us
        self.died: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._watchers = [asyncio.create_task(self._watch(server)) for server in servers]
        try:
            self.client = await self._open.enter_async_context(
                SidecarClient.open(self.product.port, self.product.token)
            )
            self.events = await self._open.enter_async_context(
                EventLog(self.client, context=self.product.describe)
            )
            self.session = await self._open.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            )
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, exc_type=None, exc=None, tb=None) -> None:
        try:
            if isinstance(exc, Exception):
                await self._explain(exc)
        finally:
            await self._close()

    async def _close(self) -> None:
        for task in self._watchers:  # the servers' exits from here on are ours
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self._open.aclose()
        finally:
            for server in self._servers():
                await asyncio.to_thread(server.stop)

    async def _watch(self, server: Server) -> None:
        code = await server.exited()
        what = f"{server.label} exited with code {code} under the harness"
        if not self.died.done():
            self.died.set_result(f"{what}\n{server.describe()}")
        if server is self.product and hasattr(self, "events"):
            self.events.fail(what)

    async def _explain(self, exc: Exception) -> None:
        """A failure on its way out gets the end of the sidecar's log (or of the server
        that exited), unless it carries it already."""
        if not self.died.done() and _broken(exc):  # the reset comes just before the exit
            await asyncio.wait({self.died}, timeout=DEATH_GRACE_S)
        text = "\n".join([str(exc), *getattr(exc, "__notes__", ())])
        if not any(str(server.log_path) in text for server in self._servers()):
            exc.add_note(self.died.result() if self.died.done() else self.product.describe())

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result; if a server exits first, ServerDied at once, with the
        end of its log. A broken connection waits a moment for the exit that usually
        follows, to say so."""
        task = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait({task, self.died}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise ServerDied(self.died.result())
        error = task.exception()
        if error is not None and _broken(error):
            await asyncio.wait({self.died}, timeout=DEATH_GRACE_S)
            if self.died.done():
                raise ServerDied(self.died.result()) from error
        return task.result()

    async def warm_up(self, pixels: np.ndarray) -> None:
        """One small beauty Apply on each server (a 256 px corner of `pixels`): the
        servers are already running when a retoucher works, their models loaded."""
        warm = pixels[:256, :256].copy()
        await self.apply({"op": "beauty", "image_id": await self.upload(warm)})
        if self.naive is not None:
            await self.naive_apply(await self.naive_upload(warm))

    # -- the product ---------------------------------------------------------------
    async def upload(self, pixels: np.ndarray) -> str:
        return (await self.guard(self.client.upload_pixels(pixels))).image_id

    async def submit(self, body: dict) -> JobCreated:
        return await self.guard(self.client.submit(body))

    async def result(self, job_id: str, into: bytearray | None = None, **query) -> bytes:
        """The full result as raw pixels (`query`: intensity, max_side), in `into` if
        given (a buffer the client keeps for one large result after another)."""
        query = {"format": "raw", **query}
        return await self.guard(self.client.result(job_id, query, into=into))

    async def finished(self, job_id: str, timeout: float = 900) -> float:
        """Arrival time of the job's `done` event; a job that fails or is cancelled
        raises, with the end of the sidecar's log, and so does a sidecar that exits or
        closes the stream meanwhile (at once) or a job still running after `timeout`."""
        waiting = self.guard(self.events.expect(job_id, *TERMINAL_STATES))
        try:
            arrived = await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            what = f"job {job_id} did not end within {timeout:.0f} s"
            raise RuntimeError(f"{what}\n{self.product.describe()}") from None
        end = [m.event for m in self.events.of(job_id) if m.event.type in TERMINAL_STATES]
        if end[-1].type != "done":
            raise RuntimeError(f"job {job_id} ended {end[-1]}\n{self.product.describe()}")
        return arrived

    async def apply(self, body: dict, *, fetch: bool = True) -> Timeline:
        """POST /v1/jobs, follow its events to `done`, then fetch the full result."""
        started = time.perf_counter()
        wall = time.time()
        created = await self.submit(body)
        timeline = Timeline(created.job_id, created.cached, submitted_wall=wall)
        if not created.cached:
            await self.finished(timeline.job_id)
        timeline.done = time.perf_counter() - started
        if fetch:  # into the buffer kept for this: what a client showing layers does
            await self.result(timeline.job_id, into=self._layer)
        timeline.layer = time.perf_counter() - started
        for message in self.events.of(timeline.job_id):
            event = message.event
            if event.type == "preview":
                timeline.previews.append(
                    (message.at - started, event.level, event.step, event.total_steps)
                )
        return timeline

    # -- the baseline --------------------------------------------------------------
    @property
    def naive_url(self) -> str:
        assert self.naive is not None
        return self.naive.url

    async def naive_upload(self, pixels: np.ndarray) -> str:
        """POST /upload, the body (base64 in JSON) encoded in a thread."""
        body = await asyncio.to_thread(naive_upload_body, pixels)
        return await self.guard(self._naive_upload(body))

    async def _naive_upload(self, body: bytes | bytearray) -> str:
        url = f"{self.naive_url}/upload"
        headers = {"Content-Type": "application/json"}
        async with self.session.post(url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["key"]

    async def naive_apply(
        self, key: str, op: str = "beauty", params: dict | None = None, intensity: float = 1.0
    ) -> NaiveReply:
        return await self.guard(self._naive_apply(key, op, params, intensity))

    async def _naive_apply(
        self, key: str, op: str, params: dict | None, intensity: float
    ) -> NaiveReply:
        body = {"key": key, "op": op, "params": params or {}, "intensity": intensity}
        wall = time.time()
        started = time.perf_counter()
        async with self.session.post(f"{self.naive_url}/apply", json=body) as r:
            assert r.status == 200, await r.text()
            data = await r.read()
            headers = r.headers
        seconds = time.perf_counter() - started
        shape = (
            int(headers["X-Image-Height"]),
            int(headers["X-Image-Width"]),
            int(headers["X-Image-Channels"]),
        )
        dtype = "u1" if headers["X-Image-Depth"] == "8" else "<u2"
        return NaiveReply(
            seconds,
            headers["X-Cached"] == "true",
            float(headers["X-Started"]),
            wall,
            data,
            shape,
            dtype,
        )


def _broken(error: BaseException) -> bool:
    """A connection that broke, as a server that exits breaks it."""
    if isinstance(error, SidecarError):
        return error.code == CONNECTION_FAILED
    return isinstance(error, aiohttp.ClientError | ConnectionError)


def naive_upload_body(pixels: np.ndarray) -> bytearray:
    """What the naive client sends: the pixels base64-encoded inside JSON (the bytes of
    `json.dumps`, which base64 needs no escaping in). Encoded a few MB at a time into
    one buffer: a thread doing this lets the event loop have the GIL between pieces,
    where one b64encode and one json.dumps of 144 MB would hold it for a second each."""
    height, width, channels = pixels.shape
    fields = {"width": width, "height": height, "channels": channels}
    fields.update(depth=pixels.dtype.itemsize * 8, pixels="")
    head = json.dumps(fields).encode()[:-2]  # …"pixels": "
    data = memoryview(np.ascontiguousarray(pixels)).cast("B")
    body = bytearray(len(head) + 4 * -(-len(data) // 3) + 2)
    body[: len(head)] = head
    at = len(head)
    for start in range(0, len(data), B64_PIECE):
        piece = base64.b64encode(data[start : start + B64_PIECE])
        body[at : at + len(piece)] = piece
        at += len(piece)
    body[at:] = b'"}'
    return body


def portrait(
    width: int,
    height: int,
    *,
    closeup: bool = False,
    alpha: bool = False,
    no_face: bool = False,
) -> np.ndarray:
    """The sample portrait upscaled to a 16-bit (H, W, 3|4) image with sensor-like noise,
    so the data is not smoother than a real capture; `no_face`: a launch photograph
    (sky, smoke, a rocket) in its place."""
    import cv2
    from skimage import data

    face = (data.rocket() if no_face else data.astronaut()).astype(np.float32) * 257.0
    if closeup:  # the head fills the frame: skin in most tiles, the slow case
        face = face[30:250, 90:420]
    big = cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 64, big.shape).astype(np.float32)
    pixels = np.clip(big + noise, 0, 65535).astype(np.uint16)
    if alpha:
        pixels = np.concatenate([pixels, np.full((height, width, 1), 65535, np.uint16)], axis=2)
    return pixels


def variant(pixels: np.ndarray, n: int) -> np.ndarray:
    """A copy that differs in its first pixel: a new image to the product's id and to the
    naive key alike (which looks at the first 64 KB only), so neither cache knows it."""
    copy = pixels.copy()
    copy[0, 0, 0] = (int(copy[0, 0, 0]) + 1 + n) % (np.iinfo(copy.dtype).max + 1)
    return copy
