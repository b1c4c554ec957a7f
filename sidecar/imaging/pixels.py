"""The canonical pixel form every image is stored and hashed in.

Canonical: a C-contiguous (height, width, channels) array, channels 3 (RGB) or 4
(RGBA), dtype uint8 or little-endian uint16. Grayscale becomes RGB; gray+alpha
becomes RGBA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageTooLarge, InvalidImage, InvalidRequest

DTYPES = {8: np.dtype(np.uint8), 16: np.dtype("<u2")}


@dataclass(frozen=True)
class Limits:
    max_megapixels: float = 300.0
    max_side: int = 300_000

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


def check_dimensions(width: int, height: int, limits: Limits) -> None:
    """Raise unless the image is a size we accept. Called before any decoding."""
    if width < 1 or height < 1:
        raise InvalidImage("image has no pixels", details={"width": width, "height": height})
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} is over the limit of {limits.max_megapixels:g} megapixels "
            f"or {limits.max_side} px per side",
            details={
                "width": width,
                "height": height,
                "max_megapixels": limits.max_megapixels,
                "max_side": limits.max_side,
            },
        )


def raw_nbytes(width: int, height: int, channels: int, depth: int) -> int:
    return width * height * channels * (depth // 8)


def canonical_from_raw(
    buffer: bytes | bytearray | memoryview, width: int, height: int, channels: int, depth: int
) -> np.ndarray:
    """View raw interleaved pixels (16-bit little-endian) as a canonical array, no copy."""
    if channels not in (3, 4) or depth not in DTYPES:
        raise InvalidRequest(
            "raw pixels must have 3 or 4 channels and depth 8 or 16",
            details={"channels": channels, "depth": depth},
        )
    expected = raw_nbytes(width, height, channels, depth)
    if len(buffer) != expected:
        raise InvalidImage(
            f"raw body is {len(buffer)} bytes; {width}x{height}x{channels} at {depth} bit "
            f"needs {expected}",
            details={"received": len(buffer), "expected": expected},
        )
    return np.frombuffer(buffer, dtype=DTYPES[depth]).reshape(height, width, channels)


def to_canonical(pixels: np.ndarray) -> np.ndarray:
    """Bring a decoded RGB-order array (H, W[, C]) to canonical form."""
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize not in (1, 2):
        raise InvalidImage(
            f"unsupported sample type {pixels.dtype}; only 8 and 16 bit integer images",
            details={"dtype": str(pixels.dtype)},
        )
    if pixels.dtype.itemsize == 2:
        pixels = pixels.astype("<u2", copy=False)  # big-endian TIFF: swap once here
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise InvalidImage(f"unsupported pixel layout {pixels.shape}")
    channels = pixels.shape[2]
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels == 2:
        gray, alpha = pixels[:, :, :1], pixels[:, :, 1:]
        pixels = np.concatenate([gray, gray, gray, alpha], axis=2)
    return np.ascontiguousarray(pixels)


def depth_of(pixels: np.ndarray) -> int:
    return 8 if pixels.dtype == np.uint8 else 16


def check_canonical(pixels: np.ndarray) -> tuple[int, int]:
    """(height, width) of canonical pixels; ValueError for anything else."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype.kind != "u":
        raise ValueError(f"expected canonical (H, W, 3|4) pixels, got {pixels.shape}")
    if pixels.dtype.itemsize not in (1, 2):
        raise ValueError(f"expected 8 or 16 bit pixels, got {pixels.dtype}")
    return pixels.shape[0], pixels.shape[1]
