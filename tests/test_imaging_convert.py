"""The two conversions to 8-bit RGB, and the cut-and-shrink copies the stages analyse."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.imaging.convert import (
    SampleFrame,
    rgb8_high_byte,
    rgb8_rounded,
    sample_rgb8,
    small_rgb8,
)
from sidecar.imaging.pixels import check_canonical


def test_8_bit_is_its_own_rgb_in_both(portrait):
    rgba = np.dstack([portrait, np.full(portrait.shape[:2], 7, np.uint8)])
    for pixels in (portrait, rgba):
        for rgb in (rgb8_high_byte(pixels), rgb8_rounded(pixels, 8)):
            assert rgb.dtype == np.uint8 and rgb.shape == portrait.shape
            assert rgb.flags.c_contiguous and np.array_equal(rgb, portrait)


def test_16_bit_high_byte_truncates_and_rounded_rounds():
    values = np.array([0, 255, 256, 383, 32767, 65280, 65535], np.uint16)
    pixels = np.ascontiguousarray(np.broadcast_to(values[None, :, None], (1, 7, 4)))

    high = rgb8_high_byte(pixels)[0, :, 0]
    rounded = rgb8_rounded(pixels, 16)[0, :, 0]

    assert high.tolist() == [0, 0, 1, 1, 127, 255, 255]
    assert rounded.tolist() == [0, 1, 1, 1, 127, 254, 255]


def test_rounded_takes_floats_in_the_depths_range():
    work = np.array([[[0.4, 127.6, 300.0], [65535.0, 32896.0, -3.0]]], np.float32)

    assert rgb8_rounded(work[:, :1], 8).tolist() == [[[0, 128, 255]]]
    assert rgb8_rounded(work[:, 1:], 16).tolist() == [[[255, 128, 0]]]


def test_small_copy_fits_the_long_side(portrait):
    pixels16 = portrait.astype(np.uint16) * 257

    small = small_rgb8(pixels16, 100)

    assert small.shape == (100, 100, 3) and small.dtype == np.uint8
    assert np.array_equal(small, small_rgb8(portrait, 100))
    assert small_rgb8(portrait, 1000).shape == portrait.shape  # never enlarged


def test_sample_is_black_outside_the_image_and_maps_back(portrait):
    crop, frame = sample_rgb8(portrait, -100, 400, 200, 200, 200)

    assert crop.shape == (200, 200, 3)
    assert not crop[:, :100].any() and not crop[112:].any()
    assert np.array_equal(crop[:112, 100:], portrait[400:, :100])
    assert frame == SampleFrame((-100.0, 400.0), (200, 200))
    assert frame.point(0.5, 0.25) == (0.0, 450.0)
    np.testing.assert_array_equal(frame.points(np.array([[0.5, 0.25]])), [[0.0, 450.0]])


def test_huge_sample_is_decimated_by_a_whole_step_first():
    pixels = np.zeros((40, 4000, 3), np.uint8)
    pixels[:, ::4] = 200  # every 4th column: a step of 4 reads only these

    crop, frame = sample_rgb8(pixels, 0, 0, 4000, 40, 500)

    assert crop.shape == (5, 500, 3) and (crop == 200).all()
    assert frame.origin == (-1.5, -1.5) and frame.span == (4000, 40)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8)],
    ids=["2d", "float", "2-channels"],
)
def test_non_canonical_pixels_are_rejected(pixels):
    with pytest.raises(ValueError):
        check_canonical(pixels)
    with pytest.raises(ValueError):
        small_rgb8(pixels, 4)
