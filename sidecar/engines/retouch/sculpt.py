"""Where `volume` lays light and shade, drawn from the face mesh (field coordinates).

Highlights: nose bridge, centre of the forehead, chin, the tops of the cheekbones.
Shadows: the hollow under each cheekbone (the line from the ear toward the mouth
corner) and along the jaw, falling onto the neck. Sizes scale with the face width.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...stages.face_geometry import Face
from ...stages.frequency import gaussian

NOSE_BRIDGE = [168, 6, 197, 195, 5]
FOREHEAD = [151, 9]
CHIN = [199, 175]
CHEEKBONES = ([116, 117, 118, 119], [345, 346, 347, 348])
EAR_TO_MOUTH = ((234, 61), (454, 291))
JAW = (
    [132, 58, 172, 136, 150, 149, 176, 148, 152],
    [361, 288, 397, 365, 379, 378, 400, 377, 152],
)
EPSILON = 1e-3  # below this a shading weight is exactly zero


def _polyline(canvas: np.ndarray, points: np.ndarray, thickness: float) -> None:
    cv2.polylines(
        canvas,
        [np.round(points * 4).astype(np.int32)],
        False,
        1.0,
        thickness=max(int(round(thickness)), 1),
        lineType=cv2.LINE_AA,
        shift=2,
    )


def _blob(canvas: np.ndarray, centre: np.ndarray, radius: float) -> None:
    cv2.circle(
        canvas,
        tuple(int(v) for v in np.round(centre * 4)),
        max(int(round(radius * 4)), 1),
        1.0,
        thickness=-1,
        lineType=cv2.LINE_AA,
        shift=2,
    )


def _finish(canvas: np.ndarray, sigma: float) -> np.ndarray:
    soft = gaussian(canvas, sigma)
    peak = float(soft.max())
    if peak <= 0:
        return soft
    soft /= peak
    soft[soft < EPSILON] = 0.0
    return soft


def light_and_shade(
    shape: tuple[int, int], faces: tuple[Face, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(highlight, shadow) weights in [0, 1] at `shape`, each peaking at 1."""
    highlight = np.zeros(shape, np.float32)
    shadow = np.zeros(shape, np.float32)
    sigma = 1.0
    for face in faces:
        p = face.points
        width = face.width
        sigma = max(sigma, width * 0.05)
        _polyline(highlight, p[NOSE_BRIDGE], width * 0.06)
        _blob(highlight, p[FOREHEAD].mean(axis=0) - [0, width * 0.08], width * 0.12)
        _blob(highlight, p[CHIN].mean(axis=0), width * 0.06)
        for cheek in CHEEKBONES:
            _polyline(highlight, p[cheek], width * 0.07)
        for ear, mouth in EAR_TO_MOUTH:
            a, b = p[ear], p[mouth]
            hollow = np.stack([a + (b - a) * f for f in (0.2, 0.45, 0.65)])
            _polyline(shadow, hollow + [0, width * 0.03], width * 0.07)
        for jaw in JAW:
            _polyline(shadow, p[jaw] + [0, width * 0.05], width * 0.08)
    return _finish(highlight, sigma), _finish(shadow, sigma)
