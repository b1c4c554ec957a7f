"""The four retouch operations, each in two halves.

`plan_*` works at field resolution (a ~1 MP copy): it measures the skin and builds
smooth fields (a low band, an L* lift, a gain, an a*b* shift) that say what to change where.
`render` applies a plan to any tile of any pyramid level at full precision: the
fine detail (pores, hair, eyelashes) always comes from the real pixels.

Linear ops (`beauty`, `dodge_burn`, `volume`) change each pixel by `t · delta`, so a
result at intensity t is exactly `original + t·(full − original)`. `color` shifts
a*, b* in Lab and is not linear in RGB: intensity t re-computes it with the shift
scaled by t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ...schema import Op
from ...stages.frequency import gaussian, masked_gaussian, support_box
from .analysis import Analysis
from .params import RetouchParams
from .sculpt import light_and_shade
from .tiles import Box, sample

LINEAR = frozenset({Op.beauty, Op.dodge_burn, Op.volume})
VERSION = "retouch-ops/2"
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
FINE_SIGMA = 1.3  # px: detail finer than this (pores, fine hair) is never smoothed
MAX_LIFT = 12.0  # dodge & burn never lifts or lowers a pixel by more than this (L*)


@dataclass(frozen=True)
class Plan:
    op: Op
    fields: dict[str, np.ndarray]  # at field resolution
    support: np.ndarray  # (h, w) float32: where the op changes anything (> 0)
    fine_sigma: float = 0.0  # beauty: the pore scale in full-resolution pixels
    extra: dict[str, float] = field(default_factory=dict)


def plan(op: Op, analysis: Analysis, params: RetouchParams) -> Plan:
    return {
        Op.beauty: _plan_beauty,
        Op.dodge_burn: _plan_dodge_burn,
        Op.volume: _plan_volume,
        Op.color: _plan_color,
    }[op](analysis, params)


def _plan_beauty(a: Analysis, params: RetouchParams) -> Plan:
    # blotches and uneven tone live between the pore scale and ~1/25 of the face
    sigma = max(a.face_width / 25.0, 1.0)
    low = masked_gaussian(a.rgb, a.mask, sigma)
    weight = (params.strength_for(Op.beauty) * a.mask).astype(np.float32)
    # pores are ~1/400 of the face; smoothing starts well above that (3×)
    fine = float(np.clip(a.face_width / a.scale / 130.0, FINE_SIGMA, 12.0))
    return Plan(Op.beauty, {"low": low, "weight": weight}, weight, fine_sigma=fine)


def _plan_dodge_burn(a: Analysis, params: RetouchParams) -> Plan:
    # light and dark patches a few % of the face across, against their surroundings
    # (~1/12 of the face): large enough to keep the face's own modelling intact. The
    # change is to L* alone, so it evens light without adding colour variation.
    lightness = np.ascontiguousarray(cv2.cvtColor(a.rgb, cv2.COLOR_RGB2Lab)[..., 0])
    local = masked_gaussian(lightness, a.mask, max(a.face_width / 50.0, 1.0))
    around = masked_gaussian(lightness, a.mask, max(a.face_width / 12.0, 2.0))
    uneven = local - around
    strength = params.strength_for(Op.dodge_burn)
    lift = np.clip(-strength * uneven, -MAX_LIFT, MAX_LIFT) * a.mask
    total = float(a.mask.sum())
    if total > 0:  # as much dodged as burnt: the skin's mean lightness stays
        lift -= a.mask * (float(lift.sum()) / total)
    lift = lift.astype(np.float32)
    return Plan(Op.dodge_burn, {"lift": lift}, np.abs(lift))


def _plan_volume(a: Analysis, params: RetouchParams) -> Plan:
    highlight, shadow = light_and_shade(a.mask.shape, a.faces)
    strength = params.strength_for(Op.volume)
    gain = strength * a.mask * (0.16 * highlight - 0.18 * shadow)
    gain = gain.astype(np.float32)
    return Plan(Op.volume, {"gain": gain}, np.abs(gain))


def skin_tone(a: Analysis, lab: np.ndarray | None = None) -> tuple[float, float] | None:
    """The skin's own median a*, b* (CIELAB), or None when there is no skin; `lab` is
    the field image's Lab when it is already made."""
    chroma = (cv2.cvtColor(a.rgb, cv2.COLOR_RGB2Lab) if lab is None else lab)[..., 1:]
    skin = a.mask > 0.8
    if skin.sum() < 50:
        skin = a.mask > 0.3
    if not skin.any():
        return None
    median = np.median(chroma[skin], axis=0)
    return float(median[0]), float(median[1])


def _plan_color(a: Analysis, params: RetouchParams) -> Plan:
    lab = cv2.cvtColor(a.rgb, cv2.COLOR_RGB2Lab)
    tone = skin_tone(a, lab)
    if tone is None:
        zero = np.zeros(a.mask.shape, np.float32)
        return Plan(Op.color, {"shift": np.zeros((*a.mask.shape, 2), np.float32)}, zero)
    target = np.array(tone, np.float32)
    if params.prior_a is not None and params.prior_b is not None:
        # a session-wide tone is only a weak pull: one badly lit frame cannot dominate
        prior = np.array([params.prior_a, params.prior_b], np.float32)
        target = 0.9 * target + 0.1 * prior
    local = masked_gaussian(lab[..., 1:], a.mask, max(a.face_width / 50.0, 1.0))
    strength = params.strength_for(Op.color)
    # no skin, no shift: worked out over the skin's box alone
    shift = np.zeros((*a.mask.shape, 2), np.float32)
    box = support_box(a.mask)
    if box is not None:
        change = -strength * a.mask[box][..., None] * (local[box] - target)
        shift[box] = change.astype(np.float32)
    extra = {"a": float(target[0]), "b": float(target[1])}
    return Plan(Op.color, {"shift": shift}, a.mask * strength, extra=extra)


def halo(plan_: Plan, level_scale: float) -> int:
    """Pixels of context a tile needs around it at this level."""
    return int(np.ceil(3 * plan_.fine_sigma * level_scale)) + 1 if plan_.fine_sigma else 0


def touches(plan_: Plan, size: tuple[int, int], box: Box) -> bool:
    """Whether the op changes anything in `box`: the field pixels its samples would
    read, plus one for the bilinear reach, checked at field resolution."""
    field_height, field_width = plan_.support.shape
    width, height = size
    x0 = max(int(box.x0 * field_width / width) - 1, 0)
    x1 = min(int(np.ceil(box.x1 * field_width / width)) + 1, field_width)
    y0 = max(int(box.y0 * field_height / height) - 1, 0)
    y1 = min(int(np.ceil(box.y1 * field_height / height)) + 1, field_height)
    return bool(plan_.support[y0:y1, x0:x1].max(initial=0.0) > 0)


def render(
    plan_: Plan,
    rgb: np.ndarray,
    outer: Box,
    box: Box,
    size: tuple[int, int],
    level_scale: float,
    t: float,
) -> np.ndarray:
    """The op applied to `box` of an image of `size` at this pyramid level. `rgb` is
    float32 in [0, 1] covering `outer` (the box plus its halo)."""
    # (the arithmetic is in place on arrays made here: a tile's float arrays are
    # 13 MB each, and fewer of them at once keep two tiles' memory down)
    inner = rgb[box.within(outer)]
    if plan_.op is Op.color:
        # not linear: intensity t scales the shift itself
        shift = sample(plan_.fields["shift"], size, box)
        shift *= t
        change = _lab_change(inner, shift, 1)
        change += inner
        return change
    if plan_.op is Op.beauty:
        fine = gaussian(rgb, plan_.fine_sigma * level_scale)[box.within(outer)]
        delta = sample(plan_.fields["low"], size, box)
        delta -= fine
        del fine
        delta *= sample(plan_.fields["weight"], size, box)[..., None]
    elif plan_.op is Op.dodge_burn:
        delta = _lab_change(inner, sample(plan_.fields["lift"], size, box)[..., None], 0)
    else:
        delta = sample(plan_.fields["gain"], size, box)[..., None] * inner
    # the full change stays within range, so every t in [0, 1] needs no clipping
    # and a result at intensity t is exactly the blend toward the full one:
    # delta = clip(inner + delta, 0, 1) - inner, then inner + t·delta
    delta += inner
    np.clip(delta, 0.0, 1.0, out=delta)
    delta -= inner
    delta *= np.float32(t)
    delta += inner
    return delta


def _lab_change(rgb: np.ndarray, shift: np.ndarray, first: int) -> np.ndarray:
    """The RGB change that adds `shift` to Lab channels first.. (L* is 0, a* 1).
    The change, not the round trip: where the shift is zero the pixel is untouched."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    moved = lab.copy()
    moved[..., first : first + shift.shape[-1]] += shift
    change = cv2.cvtColor(moved, cv2.COLOR_Lab2RGB)
    del moved
    change -= cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return change
