"""BLAKE3 content keys.

An image id is the BLAKE3 digest of a header line that states the shape and depth,
followed by every canonical pixel byte (never a prefix: an edit anywhere changes it):

    b"retouch-image/v1 {width} {height} {channels} {depth}\\n" + pixels

so the same pixels give the same id whether they arrive as PNG, TIFF or raw.
"""

from __future__ import annotations

import blake3
import numpy as np

IMAGE_KEY_VERSION = "retouch-image/v1"


def image_key_header(width: int, height: int, channels: int, depth: int) -> bytes:
    return f"{IMAGE_KEY_VERSION} {width} {height} {channels} {depth}\n".encode("ascii")


def image_id(pixels: np.ndarray) -> str:
    """Hex BLAKE3 id of a canonical (H, W, C) uint8/uint16 array."""
    height, width, channels = pixels.shape
    depth = pixels.dtype.itemsize * 8
    hasher = blake3.blake3(
        image_key_header(width, height, channels, depth), max_threads=blake3.blake3.AUTO
    )
    hasher.update(_bytes_view(pixels))
    return hasher.hexdigest()


def _bytes_view(pixels: np.ndarray) -> memoryview:
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    return memoryview(pixels).cast("B")
