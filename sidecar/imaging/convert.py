"""Canonical pixels to 8-bit RGB: the two conversions, and cut-and-shrink copies.

There are two ways down from 16 bits, and they differ on purpose:

- `rgb8_high_byte` keeps each sample's high byte (``value >> 8``, truncation): exact
  integer work, no float copy. The face and skin stages analyse this.
- `rgb8_rounded` scales by 255 / (2^depth − 1) and rounds to nearest: what a person
  looks at (previews, thumbnails). It also takes float arrays in the 0..2^depth−1 range.

For 8-bit input both are the input's RGB (alpha dropped). For 16-bit input they can
differ by one level either way (255 is 0 by its high byte but 0.99 → 1 rounded; 65280
is 255 by its high byte but 254.01 → 254 rounded), hence the two names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .pixels import check_canonical


def rgb8_high_byte(pixels: np.ndarray) -> np.ndarray:
    """RGB 8-bit copy of canonical pixels (alpha dropped, 16-bit keeps its high byte)."""
    rgb = pixels[:, :, :3]
    if rgb.dtype.itemsize == 2:
        return (rgb >> 8).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def rgb8_rounded(pixels: np.ndarray, depth: int) -> np.ndarray:
    """An 8-bit RGB view of pixels in the 0..2^depth-1 range (alpha dropped), each
    sample scaled to 0..255 and rounded to nearest; uint8 input comes through as is."""
    rgb = pixels[:, :, :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    scale = 255.0 / (255 if depth == 8 else 65535)
    return np.clip(np.rint(rgb.astype(np.float32) * scale), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SampleFrame:
    """Where a sampled copy lies in the full-resolution image: maps coordinates
    relative to the copy (0..1 across it) to full-resolution pixels."""

    origin: tuple[float, float]
    span: tuple[float, float]

    def point(self, rx: float, ry: float) -> tuple[float, float]:
        return self.origin[0] + rx * self.span[0], self.origin[1] + ry * self.span[1]

    def points(self, rel: np.ndarray) -> np.ndarray:
        """(N, 2) relative (x, y) to full-resolution pixels, float64."""
        return np.asarray(self.origin) + rel * np.asarray(self.span)


def small_rgb8(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """RGB 8-bit copy (high byte) of canonical pixels whose long side is at most
    `long_side`."""
    height, width = check_canonical(pixels)
    return sample_rgb8(pixels, 0, 0, width, height, long_side)[0]


def sample_rgb8(
    pixels: np.ndarray, x0: int, y0: int, width: int, height: int, long_side: int
) -> tuple[np.ndarray, SampleFrame]:
    """RGB 8-bit copy (high byte) of pixels[y0:y0+height, x0:x0+width], black outside
    the image, downscaled so its long side is at most `long_side`; with the frame that
    maps it back to full resolution.

    Huge inputs are first decimated by a whole step (still at least twice the target
    size), so that INTER_AREA never has to read hundreds of megapixels.
    """
    h, w = pixels.shape[:2]
    step = max(1, int(max(width, height) / (2 * long_side)))
    cols, rows = math.ceil(width / step), math.ceil(height / step)
    # sample i of the canvas is input pixel x0 + step * i; keep the ones inside the image
    i0, i1 = max(0, -(x0 // step)), min(cols, (w - 1 - x0) // step + 1)
    j0, j1 = max(0, -(y0 // step)), min(rows, (h - 1 - y0) // step + 1)
    canvas = np.zeros((rows, cols, 3), np.uint8)
    if i1 > i0 and j1 > j0:
        xs = slice(x0 + step * i0, x0 + step * (i1 - 1) + 1, step)
        ys = slice(y0 + step * j0, y0 + step * (j1 - 1) + 1, step)
        canvas[j0:j1, i0:i1] = rgb8_high_byte(pixels[ys, xs])
    scale = min(1.0, long_side / max(rows, cols))
    if scale < 1.0:
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    # a canvas pixel's centre (i + 0.5) is input pixel x0 + step * i's centre
    offset = 0.5 * (1 - step)
    return canvas, SampleFrame((x0 + offset, y0 + offset), (step * cols, step * rows))
