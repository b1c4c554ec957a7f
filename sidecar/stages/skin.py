"""Skin mask: where a skin retouch may act, as a soft (H, W) float32 mask in [0, 1].

Each face teaches a colour model of its own skin (a robust Gaussian in Lab over the face
oval without eyes, brows, lips and nostrils); the model then finds the same skin on
the neck, shoulders and arms, within the person mask. Without a face, a weaker generic
YCrCb skin range stands in. Eyes, brows, lips and nostrils are cut out last, so they
stay at exactly 0 whatever the feathering did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import mediapipe as mp
import numpy as np

from .landmarks import Face, check_canonical, region_polygons, small_rgb8, to_rgb8

VERSION = "skin/1"

FEATURES = ("eyes", "brows", "lips", "nostrils")
SEGMENT_SIDE = 256  # the selfie model's input size

# Sizes as fractions of the face width, so that they follow the face at any resolution.
FEATURE_MARGIN = 0.02  # features are cut out this much wider than their landmarks
SAMPLE_MARGIN = 0.05  # and kept this far from the colour samples
FEATHER = 0.015
NO_FACE_FEATHER = 0.003  # without a face, these two are of the image's long side
NO_FACE_SPECK = 0.004

CHIN, FOREHEAD = 152, 10  # mesh indices at the bottom and top of the face oval
NECK_SCALE, NECK_SHIFT = 0.8, 0.6

# Colour distance (in robust standard deviations) where skin fades from 1 to 0.
BODY_DISTANCE = (2.0, 3.0)
FACE_DISTANCE = (3.0, 5.0)  # near the face, shading and make-up are still skin
SHADING_TOLERANCE = 1.25  # lightness varies with light far more than hue does
# Away from the face, skin must also be about as smooth as the face's own skin.
TEXTURE_SCALE = 0.015
TEXTURE_RATIO = (2.0, 3.5)
SPECK = 0.02  # body skin thinner than about twice this is dropped (seams, glints)
MAX_SAMPLES = 20_000
MIN_SAMPLES = 50
NO_FACE_WEIGHT = 0.5
LOW, HIGH = 1 / 256, 255 / 256


class PersonSegmenter:
    """Mediapipe's general selfie segmentation. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graph = None

    def person(self, pixels: np.ndarray) -> np.ndarray:
        """Probability of person per pixel, float32 (H, W) at the size of `pixels`."""
        height, width = pixels.shape[:2]
        small = small_rgb8(pixels, SEGMENT_SIDE)
        with self._lock:
            if self._graph is None:
                self._graph = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            mask = self._graph.process(small).segmentation_mask
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(mask, 0.0, 1.0, out=mask).astype(np.float32, copy=False)

    def close(self) -> None:
        with self._lock:
            if self._graph is not None:
                self._graph.close()
            self._graph = None


def skin_mask(pixels: np.ndarray, faces: list[Face], person: np.ndarray) -> np.ndarray:
    """Soft skin mask at the size of `pixels`; `faces` and `person` in the same pixels."""
    height, width = check_canonical(pixels)
    if person.shape != (height, width):
        raise ValueError(f"person mask is {person.shape}, pixels are {(height, width)}")
    rgb = to_rgb8(pixels)
    if not faces:
        side = max(height, width)
        skin = _generic_skin(rgb) * person
        skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, _disk(NO_FACE_SPECK * side))
        return _clamp(_feather(skin * NO_FACE_WEIGHT, NO_FACE_FEATHER * side))

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    skin = np.zeros((height, width), np.float32)
    features = np.zeros((height, width), np.float32)
    for face in faces:
        face_skin, face_features = _face_skin(lab, person, face)
        np.maximum(skin, face_skin, out=skin)
        np.maximum(features, face_features, out=features)
    skin = _clamp(_feather(skin, FEATHER * max(f.width for f in faces)))
    return _clamp(skin * (1 - features))


def _face_skin(lab: np.ndarray, person: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """The skin that matches one face's colour, and that face's features to cut out
    (dilated and feathered, exactly 1 over the features themselves)."""
    shape = lab.shape[:2]
    oval = face_regions_mask(shape, [face], ["face_oval"])
    feature = face_regions_mask(shape, [face], FEATURES)
    # the per-face morphology only needs the face's surroundings
    roi = _around(face.box, SAMPLE_MARGIN * face.width + 2, shape)
    cut = np.zeros(shape, np.float32)
    if feature[roi].size == 0:  # the face lies outside the image
        return cut, cut
    cut[roi] = _dilate(feature[roi], FEATURE_MARGIN * face.width)
    cut[roi] = _clamp(_feather(cut[roi], FEATURE_MARGIN * face.width / 3))
    samples = np.zeros(shape, bool)
    samples[roi] = cv2.erode(oval[roi] * (1 - feature[roi]), _disk(SAMPLE_MARGIN * face.width)) > 0
    model = _colour_model(lab[samples])
    if model is None:  # too few skin pixels to learn from: trust the landmarks
        return oval * (1 - feature), cut

    distance = _distance(lab, model.whiten)
    near = np.maximum(oval, _neck_mask(shape, face) * person)
    near_skin = np.maximum(_ramp(distance, *FACE_DISTANCE), _highlight(lab, model))
    texture = _texture(lab[:, :, 0], TEXTURE_SCALE * face.width)
    smooth = _ramp(texture / max(float(np.median(texture[samples])), 1.0), *TEXTURE_RATIO)
    body = person * _ramp(distance, *BODY_DISTANCE) * smooth
    body = cv2.morphologyEx(body, cv2.MORPH_OPEN, _disk(SPECK * face.width))
    skin = np.maximum(near * near_skin, body)
    return skin * (1 - feature), cut


def _around(box: tuple, pad: float, shape: tuple[int, int]) -> tuple[slice, slice]:
    x0, y0 = max(0, int(box[0] - pad)), max(0, int(box[1] - pad))
    x1, y1 = min(shape[1], int(box[2] + pad) + 1), min(shape[0], int(box[3] + pad) + 1)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def face_regions_mask(
    shape: tuple[int, int], faces: list[Face], names: Iterable[str]
) -> np.ndarray:
    """float32 (H, W): 1 inside any of the named polygons of any face, 0 elsewhere."""
    mask = np.zeros(shape[:2], np.uint8)
    names = list(names)
    for face in faces:
        regions = region_polygons(face)
        for name in names:
            for polygon in regions[name]:
                fixed = np.round(polygon * 16).astype(np.int32)  # 4 bits of subpixel
                cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def _neck_mask(shape: tuple[int, int], face: Face) -> np.ndarray:
    """Where the neck should be: the face oval shrunk and moved down along the face's
    axis. Neck skin is usually in the chin's shadow, too dark for the body threshold."""
    oval = region_polygons(face)["face_oval"][0]
    centre = oval.mean(axis=0)
    down = face.points[CHIN] - face.points[FOREHEAD]
    neck = centre + NECK_SCALE * (oval - centre) + NECK_SHIFT * down
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(neck * 16).astype(np.int32)], 1, shift=4)
    return mask.astype(np.float32)


@dataclass(frozen=True)
class _SkinColour:
    mean: np.ndarray  # Lab
    spread: np.ndarray  # standard deviations in Lab
    whiten: np.ndarray  # 3x4 affine map: |whiten @ (x, 1)| is the Mahalanobis distance


def _colour_model(samples: np.ndarray) -> _SkinColour | None:
    """A robust Gaussian of the skin's Lab colour, outliers (hair, highlights, stubble)
    dropped first by median and MAD."""
    if len(samples) > MAX_SAMPLES:
        samples = samples[:: len(samples) // MAX_SAMPLES + 1]
    if len(samples) < MIN_SAMPLES:
        return None
    median = np.median(samples, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(samples - median), axis=0), 1.0)
    inliers = samples[np.all(np.abs(samples - median) <= 2.5 * spread, axis=1)]
    if len(inliers) < MIN_SAMPLES:
        return None
    inliers = inliers.astype(np.float64)
    mean = inliers.mean(axis=0)
    scale = np.array([SHADING_TOLERANCE, 1.0, 1.0])
    covariance = np.cov(inliers.T) * np.outer(scale, scale) + np.eye(3)
    whiten = np.linalg.cholesky(np.linalg.inv(covariance)).T  # |whiten @ x|^2 = x' C^-1 x
    affine = np.hstack([whiten, -(whiten @ mean)[:, None]]).astype(np.float32)
    return _SkinColour(mean, np.sqrt(np.diag(covariance)), affine)


def _distance(lab: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each pixel from the skin colour."""
    white = cv2.transform(lab, whiten)
    squares = cv2.transform(cv2.multiply(white, white), np.ones((1, 3), np.float32))
    return cv2.sqrt(squares)


def _highlight(lab: np.ndarray, model: _SkinColour) -> np.ndarray:
    """Skin under a specular highlight: brighter than the skin and no more colourful.
    Far from the mean colour, yet it is the nose tip, the forehead, the cheekbones."""
    lightness = lab[:, :, 0]
    chroma = cv2.magnitude(lab[:, :, 1] - 128, lab[:, :, 2] - 128)
    skin_chroma = float(np.hypot(model.mean[1] - 128, model.mean[2] - 128))
    brighter = np.clip((lightness - model.mean[0]) / model.spread[0], 0.0, 1.0)
    return brighter * _ramp(chroma, skin_chroma, skin_chroma + 2 * model.spread[2])


def _texture(lightness: np.ndarray, sigma: float) -> np.ndarray:
    """Local standard deviation of lightness: hair and fabric weave are rough, skin is not."""
    size = (2 * max(1, round(sigma)) + 1,) * 2
    mean = cv2.blur(lightness, size)
    return cv2.sqrt(np.maximum(cv2.blur(lightness * lightness, size) - mean * mean, 0.0))


def _generic_skin(rgb: np.ndarray) -> np.ndarray:
    """Classic YCrCb skin ranges (Chai and Ngan), fading in over a few levels inside them."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cr, cb = ycrcb[:, :, 1], ycrcb[:, :, 2]
    inside = np.minimum(np.minimum(cr - 133, 173 - cr), np.minimum(cb - 77, 127 - cb))
    return np.clip(inside / 4.0, 0.0, 1.0)


def _ramp(distance: np.ndarray, near: float, far: float) -> np.ndarray:
    """1 up to `near`, 0 from `far`, linear between."""
    return np.clip((far - distance) / (far - near), 0.0, 1.0)


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    return cv2.dilate(mask, _disk(radius)) if radius >= 0.5 else mask


def _disk(radius: float) -> np.ndarray:
    size = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a smaller copy (same look, a fraction of the time)."""
    if sigma < 0.3:
        return mask
    height, width = mask.shape
    factor = int(sigma / 2)
    if factor < 2 or min(height, width) < 8 * factor:
        return cv2.GaussianBlur(mask, (0, 0), sigma)
    small = cv2.resize(mask, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _clamp(mask: np.ndarray) -> np.ndarray:
    """Exactly 0 and 1 near the ends, so far-off pixels come through a blend untouched."""
    mask = mask.astype(np.float32, copy=False)
    mask[mask < LOW] = 0.0
    mask[mask > HIGH] = 1.0
    return np.clip(mask, 0.0, 1.0, out=mask)
