"""What each retouch op does to skin, measured on the sample portrait and on a 16-bit
upscale of it, against the thresholds the product promises."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from retouch_support import (
    band,
    full_res,
    lab,
    luma,
    new_engine,
    run_op,
    skin_core,
    untouched_region,
)

from sidecar.engines.retouch.sculpt import light_and_shade
from sidecar.schema import RETOUCH_OPS
from sidecar.stages.frequency import masked_gaussian


def upscale16(portrait: np.ndarray, width: int, height: int) -> np.ndarray:
    """The portrait at another size and 16 bit, with sensor-like noise as fine detail."""
    big = cv2.resize(portrait.astype(np.float32) * 257.0, (width, height), cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 120, big.shape).astype(np.float32)
    return np.clip(big + noise, 0, 65535).astype(np.uint16)


class Case:
    """One image, its analysis, and every op's full result on it."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.engine = new_engine()
        self.analysis = self.engine.analyse("ab" * 32, pixels)
        self.results = {op: run_op(self.engine, pixels, op) for op in RETOUCH_OPS}
        self.core = skin_core(self.analysis)
        self.outside = untouched_region(self.analysis)
        self.face_width = self.analysis.face_width / self.analysis.scale
        self.lsb = 1


@pytest.fixture(scope="module")
def small(portrait) -> Case:
    return Case(portrait)


@pytest.fixture(scope="module")
def large(portrait) -> Case:
    return Case(upscale16(portrait, 3000, 2000))


CASES = ["small", "large"]


@pytest.fixture(params=CASES)
def case(request) -> Case:
    return request.getfixturevalue(request.param)


def test_the_portrait_has_one_face_and_a_skin_mask(case):
    assert len(case.analysis.faces) == 1
    assert case.core.mean() > 0.005  # cheeks, nose, chin: most of a 4 % face
    assert case.outside.mean() > 0.6  # background, hair, suit


@pytest.mark.parametrize("op", RETOUCH_OPS)
def test_pixels_outside_skin_stay_within_one_lsb(case, op):
    diff = np.abs(case.results[op].astype(np.int64) - case.pixels.astype(np.int64))
    assert diff[case.outside].max() <= 1
    assert diff[case.core].mean() > 0.5 * (257 if case.pixels.dtype == np.uint16 else 1)


def test_beauty_smooths_blotches_and_keeps_pores(case):
    before, after = luma(case.pixels), luma(case.results["beauty"])
    pore = max(1.0, case.face_width / 400)
    fine = (0.0, pore)
    mid = (pore, case.face_width / 25)

    def energy(y, scales):
        return float((band(y, *scales)[case.core] ** 2).mean())

    assert energy(after, mid) <= 0.6 * energy(before, mid)  # mid band down ≥ 40 %
    assert energy(after, fine) >= 0.7 * energy(before, fine)  # pore scale kept ≥ 70 %


def test_dodge_burn_evens_local_light_and_keeps_the_mean(case):
    before, after = luma(case.pixels), luma(case.results["dodge_burn"])
    mask = full_res(case.analysis.mask, case.analysis.width, case.analysis.height)
    local, around = case.face_width / 50, case.face_width / 12

    def uneven(y):  # light and dark at that scale, against the skin around it
        return masked_gaussian(y, mask, local) - masked_gaussian(y, mask, around)

    assert uneven(after)[case.core].var() <= 0.6 * uneven(before)[case.core].var()
    mean_before = before[case.core].mean()
    assert abs(after[case.core].mean() - mean_before) <= 0.02 * mean_before


def test_color_pulls_chroma_together_and_keeps_the_hue(case):
    before, after = lab(case.pixels), lab(case.results["color"])
    for channel in (1, 2):  # a*, b*
        assert after[..., channel][case.core].var() <= 0.6 * before[..., channel][case.core].var()

    def median_hue(image):
        a = np.median(image[..., 1][case.core])
        b = np.median(image[..., 2][case.core])
        return np.degrees(np.arctan2(b, a))

    assert abs(median_hue(after) - median_hue(before)) <= 3.0


def test_volume_lights_the_planes_and_shades_the_hollows(case):
    analysis = case.analysis
    highlight, shadow = light_and_shade(analysis.mask.shape, analysis.faces)
    size = (analysis.width, analysis.height)
    lit = (full_res(highlight * analysis.mask, *size) > 0.5) & case.core
    shaded = (full_res(shadow * analysis.mask, *size) > 0.5) & (
        full_res(analysis.mask, *size) > 0.5
    )
    assert lit.sum() > 50 and shaded.sum() > 50
    before, after = lab(case.pixels)[..., 0], lab(case.results["volume"])[..., 0]
    contrast_before = before[lit].mean() - before[shaded].mean()
    contrast_after = after[lit].mean() - after[shaded].mean()
    # the stated amount: at least 6 L* units more between lit planes and hollows
    assert contrast_after - contrast_before >= 6.0
    # nothing changes away from the face and neck
    x0, y0, x1, y1 = (v / analysis.scale for v in analysis.faces[0].box)
    width = x1 - x0
    near = np.zeros(case.pixels.shape[:2], bool)
    near[
        max(int(y0 - 0.3 * width), 0) : int(y1 + 0.8 * width),
        max(int(x0 - 0.3 * width), 0) : int(x1 + 0.3 * width),
    ] = True
    diff = np.abs(case.results["volume"].astype(np.int64) - case.pixels.astype(np.int64))
    assert diff[~near].max() <= 1
