"""An asyncio client of a real sidecar for the benchmarks: uploads, jobs, events."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import struct
import time
from collections import Counter

import aiohttp
import numpy as np

from .sidecar import Sidecar

TERMINAL = {"done", "failed", "cancelled"}


class Events:
    """One WebSocket client: every text event it receives, with the time it arrived."""

    def __init__(self, session: aiohttp.ClientSession, sidecar: Sidecar) -> None:
        self._session = session
        self._url = f"{sidecar.url}/v1/ws?token={sidecar.token}"
        self.arrivals: list[tuple[float, dict]] = []
        self.frames = 0
        self.frame_bytes = 0
        self.bytes_by_job: Counter[str] = Counter()  # every message of a job, as sent
        self._waiters: list[tuple[str, tuple[str, ...], asyncio.Future]] = []

    async def __aenter__(self) -> Events:
        self._ws = await self._session.ws_connect(self._url, max_msg_size=0)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await self._ws.close()

    async def _read(self) -> None:
        async for message in self._ws:
            now = time.perf_counter()
            if message.type is aiohttp.WSMsgType.BINARY:
                self.frames += 1
                self.frame_bytes += len(message.data)
                (length,) = struct.unpack(">I", message.data[:4])
                event = json.loads(message.data[4 : 4 + length])  # the preview's header
                event["_bytes"] = len(message.data)
            else:
                event = json.loads(message.data)
                event["_bytes"] = len(message.data.encode())
            if "job_id" in event:
                self.bytes_by_job[event["job_id"]] += event["_bytes"]
            self.arrivals.append((now, event))
            for waiter in list(self._waiters):
                job_id, kinds, future = waiter
                if event.get("job_id") == job_id and event["type"] in kinds:
                    self._waiters.remove(waiter)
                    if not future.done():
                        future.set_result(now)

    def of(self, job_id: str) -> list[tuple[float, dict]]:
        """Every event of one job so far, with its arrival time."""
        return [(now, event) for now, event in self.arrivals if event.get("job_id") == job_id]

    def expect(self, job_id: str, *kinds: str) -> asyncio.Future:
        """A future with the arrival time of the first event of `kinds` for `job_id`
        (registered up front)."""
        future = asyncio.get_running_loop().create_future()
        for now, event in self.arrivals:
            if event.get("job_id") == job_id and event["type"] in kinds:
                future.set_result(now)
                return future
        self._waiters.append((job_id, kinds, future))
        return future


def raw_headers(pixels: np.ndarray) -> dict[str, str]:
    """The headers of a raw-pixel upload of `pixels` (H×W×C, uint8 or uint16)."""
    height, width, channels = pixels.shape
    return {
        "Content-Type": "application/octet-stream",
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": str(channels),
        "X-Image-Depth": str(pixels.dtype.itemsize * 8),
    }


async def upload(session, sidecar: Sidecar, pixels: np.ndarray) -> str:
    headers = {**sidecar.auth, **raw_headers(pixels)}
    async with session.post(
        f"{sidecar.url}/v1/images", data=pixels.tobytes(), headers=headers
    ) as r:
        assert r.status in (200, 201), await r.text()
        return (await r.json())["image_id"]


_NONCE = itertools.count()


async def submit(session, sidecar: Sidecar, image_id: str, priority="normal", **params) -> str:
    """A synthetic-engine job; a nonce param makes each one new, so none is answered
    from the result cache (these benchmarks measure the queue, not the cache)."""
    params.setdefault("nonce", next(_NONCE))
    body = {"op": "beauty", "image_id": image_id, "priority": priority, "params": params}
    async with session.post(f"{sidecar.url}/v1/jobs", json=body, headers=sidecar.auth) as r:
        assert r.status == 202, await r.text()
        return (await r.json())["job_id"]


async def wait_state(session, sidecar: Sidecar, job_id: str, states=TERMINAL) -> dict:
    while True:
        async with session.get(f"{sidecar.url}/v1/jobs/{job_id}", headers=sidecar.auth) as r:
            job = await r.json()
        if job["state"] in states:
            return job
        await asyncio.sleep(0.005)


def stalled_websocket(port: int, token: str) -> socket.socket:
    """Completes the WebSocket handshake, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"WebSocket handshake refused: {head[:40]!r}")
    return sock
