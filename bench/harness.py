"""The product and the baseline side by side: a real sidecar and the naive server,
each in its own process, started together and driven over loopback by one client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from sidecar.client import SidecarClient
from sidecar.schema import TERMINAL_STATES, JobCreated, JobEvent

from .events import EventLog
from .sidecar import NaiveServer, Sidecar


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
    HTTP session for the naive server, which has no client of its own)."""

    def __init__(
        self, root: Path, *product_args: str, naive_model: Path | None = None, naive: bool = True
    ) -> None:
        self.product = Sidecar(root / "product", *product_args)
        self.naive = NaiveServer(root / "naive", naive_model) if naive else None

    async def __aenter__(self) -> Harness:
        servers = [s for s in (self.product, self.naive) if s is not None]
        for server in servers:
            server.start()
        try:
            for server in servers:
                await asyncio.to_thread(server.wait_ready)
        except BaseException:
            for server in servers:
                server.stop()
            raise
        self._open = contextlib.AsyncExitStack()
        try:
            self.client = await self._open.enter_async_context(
                SidecarClient.open(self.product.port, self.product.token)
            )
            self.events = await self._open.enter_async_context(EventLog(self.client))
            self.session = await self._open.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            )
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._open.aclose()
        for server in (self.product, self.naive):
            if server is not None:
                server.stop()

    async def warm_up(self, pixels: np.ndarray) -> None:
        """One small beauty Apply on each server (a 256 px corner of `pixels`): the
        servers are already running when a retoucher works, their models loaded."""
        warm = pixels[:256, :256].copy()
        await self.apply({"op": "beauty", "image_id": await self.upload(warm)})
        if self.naive is not None:
            await self.naive_apply(await self.naive_upload(warm))

    # -- the product ---------------------------------------------------------------
    async def upload(self, pixels: np.ndarray) -> str:
        return (await self.client.upload_pixels(pixels)).image_id

    async def submit(self, body: dict) -> JobCreated:
        return await self.client.submit(body)

    async def result(self, job_id: str, **query) -> bytes:
        """The full result as raw pixels (`query`: intensity, max_side)."""
        return await self.client.result(job_id, {"format": "raw", **query})

    async def finished(self, job_id: str, timeout: float = 900) -> float:
        """Arrival time of the job's `done` event; a job that fails or is cancelled
        raises, with the end of the sidecar's log."""
        arrived = await asyncio.wait_for(self.events.expect(job_id, *TERMINAL_STATES), timeout)
        end = [m.event for m in self.events.of(job_id) if m.event.type in TERMINAL_STATES]
        if end[-1].type != "done":
            raise RuntimeError(f"job {job_id} ended {end[-1]}:\n{self.product.log_tail()}")
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
        if fetch:
            await self.result(timeline.job_id)
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
        body = naive_upload_body(pixels)
        url = f"{self.naive_url}/upload"
        headers = {"Content-Type": "application/json"}
        async with self.session.post(url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["key"]

    async def naive_apply(
        self, key: str, op: str = "beauty", params: dict | None = None, intensity: float = 1.0
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


def naive_upload_body(pixels: np.ndarray) -> bytes:
    """What the naive client sends: the pixels base64-encoded inside JSON."""
    height, width, channels = pixels.shape
    return json.dumps(
        {
            "width": width,
            "height": height,
            "channels": channels,
            "depth": pixels.dtype.itemsize * 8,
            "pixels": base64.b64encode(memoryview(np.ascontiguousarray(pixels)).cast("B")).decode(
                "ascii"
            ),
        }
    ).encode()


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
