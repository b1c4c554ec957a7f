"""Image files and request helpers shared by the tests."""

from __future__ import annotations

import io
import json
import socket
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np
import tifffile

from sidecar.client import raw_pixel_headers as raw_headers  # noqa: F401 (the tests' too)
from sidecar.settings import LOOPBACK


def free_port() -> int:
    """A loopback port that nothing listens on now: for a sidecar a test starts, or a
    port where none answers (so `apply` and `batch` start theirs in-process)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


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
