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
    weight the value means nothing (callers multiply by the weights again)."""
    weights = np.asarray(weights, dtype=np.float32)
    w = weights[..., None] if values.ndim == 3 else weights
    num = gaussian(values * w, sigma)
    den = gaussian(weights, sigma)
    den = den[..., None] if values.ndim == 3 else den
    return num / np.maximum(den, np.float32(floor))
