"""The result at an intensity: original + t·(result − original), rounded, saturated."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.imaging.blend import result_at_intensity


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [3, 4])
def test_ends_are_exact_and_the_middle_is_the_rounded_sum(dtype, channels):
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(5)
    original = rng.integers(0, top, (33, 17, channels), dtype=dtype, endpoint=True)
    result = rng.integers(0, top, (33, 17, channels), dtype=dtype, endpoint=True)

    assert np.array_equal(result_at_intensity(original, result, 0.0), original)
    assert np.array_equal(result_at_intensity(original, result, 1.0), result)
    for t in (0.25, 0.5, 0.731):
        blended = result_at_intensity(original, result, t)
        exact = original.astype(np.float64) * (1 - t) + result.astype(np.float64) * t
        assert blended.dtype == dtype and blended.shape == original.shape
        # nearest, alpha too; OpenCV sums 16-bit samples in float32, a hair past 0.5
        slack = 1e-6 if dtype == np.uint8 else 0.01
        assert np.abs(blended - exact).max() <= 0.5 + slack


def test_it_does_not_write_to_its_inputs():
    original = np.full((4, 4, 3), 10, np.uint16)
    result = np.full((4, 4, 3), 60000, np.uint16)

    assert (result_at_intensity(original, result, 0.5) == 30005).all()
    assert (original == 10).all() and (result == 60000).all()
