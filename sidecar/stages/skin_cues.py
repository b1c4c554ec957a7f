"""The cues the skin mask weighs: a face's skin colour as a robust Gaussian in Lab (and
any other colour region's, to compare against), and the texture of fine detail (its
energy and how much of it runs one way). Pure numpy/OpenCV, no mediapipe. They are part
of the mask: a change here is a change of `skin.VERSION`."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHADING_TOLERANCE = 1.5  # lightness varies with light far more than hue does
MAX_SAMPLES = 20_000
MIN_SAMPLES = 30


@dataclass(frozen=True)
class SkinColour:
    mean: np.ndarray  # Lab
    spread: np.ndarray  # standard deviations in Lab
    whiten: np.ndarray  # 3x4 affine map: |whiten @ (x, 1)| is the Mahalanobis distance
    log_scale: float  # log of the square root of the covariance's determinant


def colour_model(samples: np.ndarray) -> SkinColour | None:
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
    covariance = np.cov(inliers.T) * np.outer(scale, scale) + np.eye(3) * 2.0
    whiten = np.linalg.cholesky(np.linalg.inv(covariance)).T  # |whiten @ x|^2 = x' C^-1 x
    affine = np.hstack([whiten, -(whiten @ mean)[:, None]]).astype(np.float32)
    log_scale = 0.5 * float(np.linalg.slogdet(covariance)[1])
    return SkinColour(mean, np.sqrt(np.diag(covariance)), affine, log_scale)


def mahalanobis(lab: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each pixel from the skin colour."""
    white = cv2.transform(lab, whiten)
    squares = cv2.transform(cv2.multiply(white, white), np.ones((1, 3), np.float32))
    return cv2.sqrt(squares)


def log_likelihood(distance: np.ndarray, model: SkinColour) -> np.ndarray:
    """Log of a Gaussian's density (up to a shared constant): a broad model, which is
    near to everything, pays for its breadth."""
    return -0.5 * distance * distance - np.float32(model.log_scale)


def highlight(lab: np.ndarray, model: SkinColour) -> np.ndarray:
    """Skin under a specular highlight: brighter than the skin and no more colourful.
    Far from the mean colour, yet it is the nose tip, the forehead, the cheekbones."""
    lightness = lab[:, :, 0]
    chroma = cv2.magnitude(lab[:, :, 1] - 128, lab[:, :, 2] - 128)
    skin_chroma = float(np.hypot(model.mean[1] - 128, model.mean[2] - 128))
    brighter = (lightness - model.mean[0]) / model.spread[0]
    np.clip(brighter, 0.0, 1.0, out=brighter)
    return brighter * ramp(chroma, skin_chroma, skin_chroma + 2 * model.spread[2])


def detail(lightness: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Fine detail's local energy (RMS of the high-passed lightness) and the coherence of
    its structure tensor in [0, 1]: 1 where all of it runs one way (strands, grain)."""
    fine = lightness - cv2.GaussianBlur(lightness, (0, 0), sigma)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)
    # the four local means in one blur of a 4-channel image (one pass, not four)
    stacked = cv2.merge([fine * fine, gx * gx, gy * gy, gx * gy])
    power, jxx, jyy, jxy = _local_means(stacked, 2.5 * sigma)
    energy = cv2.sqrt(np.maximum(power, 0.0))
    coherence = cv2.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / (jxx + jyy + 1e-3)
    return energy, coherence


def _local_means(image: np.ndarray, sigma: float) -> list[np.ndarray]:
    """Each channel's Gaussian local mean; wide ones on a reduced copy (smooth anyway)."""
    height, width = image.shape[:2]
    factor = int(sigma / 2)
    if factor < 2 or min(height, width) < 8 * factor:
        return list(cv2.split(cv2.GaussianBlur(image, (0, 0), sigma)))
    small = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return [
        cv2.resize(channel, (width, height), interpolation=cv2.INTER_LINEAR)
        for channel in cv2.split(small)
    ]


def ramp(distance: np.ndarray, near: float, far: float) -> np.ndarray:
    """1 up to `near`, 0 from `far`, linear between."""
    share = (far - distance) / (far - near)
    return np.clip(share, 0.0, 1.0, out=share)


def rise(value: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 up to `low`, 1 from `high`, linear between."""
    share = (value - low) / (high - low)
    return np.clip(share, 0.0, 1.0, out=share)
