"""Frequency separation: low = Gaussian, high = image − low, in float32.

`frequency_merge(*frequency_split(x, sigma))` gives back `x` to float32 rounding
(far below 1 LSB at 16 bit). Large radii are blurred on a reduced copy and scaled
back up: the low band of a portrait has no detail that the reduction could lose,
and a 60 px Gaussian at full size would cost seconds.
"""

from __future__ import annotations

import cv2
import numpy as np

VERSION = "frequency/1"
DIRECT_SIGMA = 8.0  # above this the blur runs on a reduced copy


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur (float32 out) with edges reflected; sigma in pixels."""
    image = np.asarray(image, dtype=np.float32)
    if sigma < 0.3:
        return image.copy()
    height, width = image.shape[:2]
    factor = int(sigma // (DIRECT_SIGMA / 2))
    if sigma <= DIRECT_SIGMA or factor < 2 or min(height, width) < 4 * factor:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    # area reduction already averages over `factor` px: take its variance off the blur
    residual = float(np.sqrt(max(sigma**2 - (factor**2 - 1) / 12.0, 0.25))) / factor
    small = cv2.GaussianBlur(small, (0, 0), residual, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def frequency_split(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) with low + high == image (float32)."""
    image = np.asarray(image, dtype=np.float32)
    low = gaussian(image, sigma)
    return low, image - low


def frequency_merge(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + high


def masked_gaussian(
    values: np.ndarray, weights: np.ndarray, sigma: float, floor: float = 1e-3
) -> np.ndarray:
    """Normalised convolution: the Gaussian mean of `values` over where `weights` are,
    so a skin average near the hairline is not pulled toward the hair. Far from any
    weight the value means nothing (callers multiply by the weights again).

    A blur made at full size (sigma up to DIRECT_SIGMA) runs on the weights' support
    only, with a margin of zeros wider than its kernel: the same bits as over the whole
    image, where everything beyond the kernel's reach of a weight is 0."""
    weights = np.asarray(weights, dtype=np.float32)
    values = np.asarray(values)  # as given: the product with the weights is what is blurred
    box = _support(weights, sigma)
    if box is None:
        return _normalised(values, weights, sigma, floor)
    mean = np.zeros(values.shape, np.float32)
    mean[box] = _normalised(values[box], weights[box], sigma, floor)
    return mean


def _support(weights: np.ndarray, sigma: float) -> tuple[slice, slice] | None:
    """The box of the non-zero weights and a margin past the kernel's reach, or None
    where the blur is not direct or the box is nearly the whole image."""
    if not 1.0 <= sigma <= DIRECT_SIGMA:  # (smaller kernels take other code paths)
        return None
    margin = int(np.ceil(4 * sigma)) + 2  # OpenCV's float kernel is 8 sigma + 1 wide
    box = support_box(weights, margin)
    if box is None:
        return None
    rows, cols = box
    if (rows.stop - rows.start) * (cols.stop - cols.start) > 0.8 * weights.size:
        return None
    return box


def support_box(weights: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The box around the non-zero `weights`, grown by `margin` within the image, or
    None when they are all zero."""
    rows, cols = np.flatnonzero(weights.any(axis=1)), np.flatnonzero(weights.any(axis=0))
    if rows.size == 0:
        return None
    height, width = weights.shape
    y0, y1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height)
    x0, x1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width)
    return slice(y0, y1), slice(x0, x1)


def _normalised(values: np.ndarray, weights: np.ndarray, sigma: float, floor: float):
    w = weights[..., None] if values.ndim == 3 else weights
    num = gaussian(values * w, sigma)
    den = gaussian(weights, sigma)
    den = den[..., None] if values.ndim == 3 else den
    return num / np.maximum(den, np.float32(floor))
