"""Blends of canonical pixels."""

from __future__ import annotations

import cv2
import numpy as np


def result_at_intensity(original: np.ndarray, result: np.ndarray, t: float) -> np.ndarray:
    """original + t·(result − original): a linear op's result at intensity t, from its
    full result. Same shape and dtype as the inputs (8 or 16 bit, 3 or 4 channels, alpha
    blended like colour), each sample rounded to nearest and saturated (16-bit sums are
    float32: within 0.51 of the exact value).

    OpenCV does the sum (SIMD, threads): ~30 ms at 24 MP 16-bit against ~2 s for the
    same sum in numpy float32.
    """
    return cv2.addWeighted(original, 1.0 - t, result, t, 0.0)
