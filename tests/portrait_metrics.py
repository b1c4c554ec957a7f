"""What each retouch op did to a portrait of the set, measured against its hand-drawn
regions (not against the product's own skin mask), and the criteria every image meets.

Scales follow the face: `face_width` is the width of the faces in full-resolution
pixels (the median over the faces found). Colour is CIELAB (L* 0..100).
"""

from __future__ import annotations

import cv2
import numpy as np

from sidecar.stages.frequency import masked_gaussian

LEVELS = 2  # a pixel has changed when any channel moved by more than this (8-bit levels)
KEEP_OUT = ("hair", "brows", "eyes", "lips", "clothes", "background")
MAX_CHANGED = 0.01  # of each keep-out region's pixels

# Each op's criteria on annotated skin, (metric, comparison, bound); ratios are after/before.
CRITERIA = {
    "beauty": [
        ("blotch_ratio", "<=", 0.6),  # mid-frequency blotchiness down at least 40 %
        ("pore_ratio", ">=", 0.7),  # pore-scale detail kept at least 70 %
    ],
    "dodge_burn": [
        ("uneven_ratio", "<=", 0.75),  # local luminance unevenness down at least 25 %
        ("a_spread_ratio", "<=", 1.02),  # adds no colour variation
        ("b_spread_ratio", "<=", 1.02),
        ("mean_l_shift", "<=", 1.5),  # the skin's mean lightness stays (L* units)
    ],
    "color": [
        ("a_spread_ratio", "<=", 0.85),  # hue and saturation evened
        ("b_spread_ratio", "<=", 0.85),
        ("hue_shift", "<=", 3.0),  # degrees: the skin keeps its hue
        ("uneven_ratio", ">=", 0.9),  # and its light
    ],
    "volume": [
        ("contrast_gain", ">=", 5.0),  # L* between lit planes and hollows, added
        ("step", "<=", 1.5),  # L* per pixel: the added light has no hard edge (no halo)
    ],
}


def lab(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3].astype(np.float32) / np.iinfo(pixels.dtype).max
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """bool (H, W): any channel moved by more than LEVELS (in 8-bit levels)."""
    scale = 255.0 / np.iinfo(before.dtype).max
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)) * scale
    return diff.max(axis=2) > LEVELS


def region_changes(regions: dict[str, np.ndarray], moved: np.ndarray) -> dict[str, float]:
    """Fraction of each annotated region's pixels that changed."""
    return {
        name: float(moved[mask].mean()) if mask.any() else 0.0 for name, mask in regions.items()
    }


def skin_metrics(
    before: np.ndarray,
    after: np.ndarray,
    skin: np.ndarray,
    face_width: float,
    lit: np.ndarray | None = None,
    shaded: np.ndarray | None = None,
) -> dict[str, float]:
    """Every skin metric of one result; `lit` and `shaded` (bool) for volume's planes."""
    pore = max(1.0, face_width / 400)  # pores: finer than this
    blotch_from = max(2.0, face_width / 100)  # blotches: from here to 1/25 of the face
    weights = skin.astype(np.float32)
    lab0, lab1 = lab(before), lab(after)

    def smooth(channel, sigma):  # the skin's own local mean: no hair or collar in it
        return masked_gaussian(channel, weights, sigma)

    def typical(values):  # squared robust spread: a few strong creases do not dominate
        return float(np.median(np.abs(values - np.median(values)))) ** 2

    def blotch(lightness):
        band = smooth(lightness, blotch_from) - smooth(lightness, face_width / 25)
        return typical(band[skin])

    def pores(lightness):
        return typical((lightness - smooth(lightness, pore))[skin])

    def uneven(lightness):  # patches ~1/50 of the face against ~1/12 around them
        local = smooth(lightness, face_width / 50) - smooth(lightness, face_width / 12)
        return typical(local[skin])

    def spread(channel):  # blotchy colour: patches from ~1/50 of the face up
        return float(np.std(smooth(channel, face_width / 50)[skin]))

    def hue(image):
        a, b = np.median(image[..., 1][skin]), np.median(image[..., 2][skin])
        return float(np.degrees(np.arctan2(b, a)))

    l0, l1 = lab0[..., 0], lab1[..., 0]
    metrics = {
        "blotch_ratio": blotch(l1) / max(blotch(l0), 1e-9),
        "pore_ratio": pores(l1) / max(pores(l0), 1e-9),
        "uneven_ratio": uneven(l1) / max(uneven(l0), 1e-9),
        "a_spread_ratio": spread(lab1[..., 1]) / max(spread(lab0[..., 1]), 1e-9),
        "b_spread_ratio": spread(lab1[..., 2]) / max(spread(lab0[..., 2]), 1e-9),
        "a_spread_before": spread(lab0[..., 1]),
        "mean_l_shift": abs(float(l1[skin].mean() - l0[skin].mean())),
        "hue_shift": abs((hue(lab1) - hue(lab0) + 180) % 360 - 180),
    }
    delta = l1 - l0
    gy, gx = np.gradient(cv2.GaussianBlur(delta, (0, 0), pore))
    metrics["step"] = float(np.percentile(np.hypot(gx, gy), 99.9))
    if lit is not None and shaded is not None and lit.any() and shaded.any():
        contrast0 = l0[lit].mean() - l0[shaded].mean()
        contrast1 = l1[lit].mean() - l1[shaded].mean()
        metrics["contrast_gain"] = float(contrast1 - contrast0)
    return metrics


def failures(op: str, metrics: dict[str, float]) -> list[str]:
    """The criteria of `op` that these metrics miss, as readable lines."""
    missed = []
    for name, comparison, bound in CRITERIA[op]:
        value = metrics.get(name)
        ok = value is not None and (value <= bound if comparison == "<=" else value >= bound)
        if not ok:
            missed.append(f"{op}: {name} = {value} (want {comparison} {bound})")
    return missed
