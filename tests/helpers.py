"""Image files, request helpers and waits shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile

from sidecar.client import raw_pixel_headers as raw_headers  # noqa: F401 (the tests' too)
from sidecar.settings import LOOPBACK, Settings


def free_port() -> int:
    """A loopback port that nothing listens on now: for a sidecar a test starts, or a
    port where none answers (so `apply` and `batch` start theirs in-process)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# Gray+alpha inputs: (format, depth, the TIFF's extra sample)
GRAY_ALPHA = [
    ("tiff", 8, "unassalpha"),
    ("tiff", 8, "assocalpha"),
    ("tiff", 16, "unassalpha"),
    ("tiff", 16, "assocalpha"),
    ("png", 8, None),
    ("png", 16, None),
]


def settings_under(tmp_path, **overrides) -> Settings:
    """Settings whose folders are all under `tmp_path` (port 0: any free one)."""
    return Settings(
        cache_dir=tmp_path / "cache",
        config_dir=tmp_path / "config",
        data_dir=tmp_path / "data",
        port=0,
        **overrides,
    )


def encode_png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", _to_bgr(pixels))
    assert ok
    return data.tobytes()


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", _to_bgr(pixels), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def encode_tiff(pixels: np.ndarray, compression: str | None = None) -> bytes:
    out = io.BytesIO()
    photometric = "minisblack" if pixels.ndim == 2 else "rgb"
    tifffile.imwrite(out, pixels, photometric=photometric, compression=compression)
    return out.getvalue()


def encode_tiff_opencv(pixels: np.ndarray) -> bytes:
    """TIFF written by libtiff with LZW (OpenCV's default), i.e. the fallback decoder."""
    ok, data = cv2.imencode(".tiff", _to_bgr(pixels))
    assert ok
    return data.tobytes()


def _to_bgr(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    return pixels


def files_under(path) -> list:
    return sorted(p for p in path.rglob("*") if p.is_file())


class FakeHealth(BaseHTTPRequestHandler):
    """Something on the port that answers /v1/health like a sidecar (for `status` and
    `cache clear`): serve it with http.server.ThreadingHTTPServer."""

    def do_GET(self):  # noqa: N802 (the http.server name)
        body = json.dumps({"status": "ok", "version": "9.9.9"}).encode()
        self.send_response(200 if self.path == "/v1/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def closing_fixture(make: Callable[[], Any]):
    """A fixture of what `make()` returns (a model, a finder: slow to load), shared by
    a module's tests and closed after its last one; `make`'s docstring is its own."""

    @pytest.fixture(scope="module")
    def fixture():
        with contextlib.closing(make()) as resource:
            yield resource

    fixture.__doc__ = make.__doc__
    return fixture


class Changes:
    """Waiting on a condition that changes only when something calls `note()` (an event
    arrived, a callback ran): `await changes.until(predicate)` re-checks the predicate
    at each change and returns its value once it holds; no clock is involved but the
    timeout."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def note(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = ""):
        try:
            async with asyncio.timeout(timeout):
                while not (value := predicate()):
                    self._changed.clear()
                    await self._changed.wait()
                return value
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s: {what or predicate}") from None


# Polling, for what gives no signal to wait on: another process (is it up yet? has it
# written its files?) or the OS. Every poll in the tests goes through these two; any
# other pause in a test is itself what is tested (a slow client, a sampling period)
# and says so where it is.


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
):
    """Call `predicate` every `interval` seconds until it returns something true, and
    return that; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        time.sleep(interval)  # a poll: what it waits on gives no signal
    return value


async def async_wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
):
    """`wait_until` for the event loop: `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        await asyncio.sleep(interval)  # a poll: what it waits on gives no signal


def astronaut_face(side: int) -> np.ndarray:
    """A real portrait for file tests: the astronaut's head and shoulders, `side` px
    square, 8-bit RGB (scikit-image's sample)."""
    from skimage import data

    crop = data.astronaut()[0:320, 96:416]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
