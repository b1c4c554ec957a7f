"""Frequency separation: split then merge gives the input back within 1 LSB."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.stages.frequency import frequency_merge, frequency_split, gaussian, masked_gaussian


@pytest.mark.parametrize("sigma", [0.0, 1.5, 6.0, 40.0])
def test_split_and_merge_round_trip_8_and_16_bit(portrait, portrait16, sigma):
    for pixels in (portrait, portrait16):
        top = np.float32(np.iinfo(pixels.dtype).max)
        image = pixels.astype(np.float32) / top
        low, high = frequency_split(image, sigma)
        assert low.dtype == high.dtype == np.float32
        back = np.rint(frequency_merge(low, high) * top)
        assert np.abs(back - pixels).max() <= 1


def test_low_band_is_smooth_and_keeps_the_mean(portrait):
    image = portrait.astype(np.float32) / 255
    for sigma, most in ((2.0, 0.6), (30.0, 0.1)):  # direct, and on a reduced copy
        low, high = frequency_split(image, sigma)
        assert abs(float(low.mean()) - float(image.mean())) < 0.01
        # the low band holds far less pixel-to-pixel variation than the image
        change = np.abs(np.diff(low, axis=1)).mean() / np.abs(np.diff(image, axis=1)).mean()
        assert change < most
        assert abs(float(high.mean())) < 0.01


def test_large_radius_blur_matches_a_true_gaussian(portrait):
    import cv2

    image = portrait.astype(np.float32) / 255
    fast = gaussian(image, 24.0)
    exact = cv2.GaussianBlur(image, (0, 0), 24.0, borderType=cv2.BORDER_REFLECT_101)
    inner = (slice(60, -60), slice(60, -60))
    assert np.abs(fast[inner] - exact[inner]).mean() < 0.004


def test_masked_mean_ignores_what_is_outside_the_mask():
    values = np.zeros((64, 64), np.float32)
    values[:, 32:] = 1.0  # "hair" on the right
    weights = np.zeros((64, 64), np.float32)
    weights[:, :32] = 1.0  # "skin" on the left
    mean = masked_gaussian(values, weights, 8.0)
    assert mean[:, :32].max() < 1e-4  # skin near the border is not pulled toward the hair


def _whole_image_mean(values, weights, sigma):
    """The normalised convolution over the whole image, as the definition has it."""
    w = weights[..., None] if values.ndim == 3 else weights
    den = gaussian(weights, sigma)
    den = den[..., None] if values.ndim == 3 else den
    return gaussian(values * w, sigma) / np.maximum(den, np.float32(1e-3))


@pytest.mark.parametrize("channels", [0, 2, 3])
def test_masked_mean_on_the_support_alone_gives_the_whole_images_bits(channels):
    rng = np.random.default_rng(channels)
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(24, 300, 2))
        shape = (height, width) if channels == 0 else (height, width, channels)
        values = rng.normal(0.0, 1.0, shape).astype(np.float32)  # negative too: -0.0
        weights = np.zeros((height, width), np.float32)
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))  # edges too
        y1, x1 = (
            min(height, y0 + int(rng.integers(1, 90))),
            min(width, x0 + int(rng.integers(1, 90))),
        )
        patch = rng.random((y1 - y0, x1 - x0)).astype(np.float32)
        weights[y0:y1, x0:x1] = patch * (rng.random(patch.shape) > 0.3)
        sigma = float(rng.uniform(0.3, 12.0))  # direct, small kernels and reduced
        assert np.array_equal(
            masked_gaussian(values, weights, sigma), _whole_image_mean(values, weights, sigma)
        ), (height, width, channels, sigma)


def test_masked_mean_with_no_weight_is_zero():
    values = np.ones((40, 50, 3), np.float32)
    assert not masked_gaussian(values, np.zeros((40, 50), np.float32), 4.0).any()
