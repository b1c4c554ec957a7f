"""Encoding canonical pixels: previews (8-bit JPEG) and results (PNG/TIFF, any depth)."""

from __future__ import annotations

import cv2
import numpy as np

PREVIEW_QUALITY = 85


def fit_within(pixels: np.ndarray, max_side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb8: np.ndarray, quality: int = PREVIEW_QUALITY) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def encode_file(pixels: np.ndarray, fmt: str) -> bytes:
    """PNG or TIFF of canonical pixels, keeping depth and alpha."""
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ext = {"png": ".png", "tiff": ".tiff"}[fmt]
    # TIFF uncompressed: OpenCV's default LZW took 0.5 s per 6 MP 16-bit image to save
    # about 5 % of its size (photographic 16-bit data hardly compresses).
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == "png" else [cv2.IMWRITE_TIFF_COMPRESSION, 1]
    ok, data = cv2.imencode(ext, cv2.cvtColor(pixels, code), params)
    if not ok:
        raise ValueError(f"{fmt} encoding failed")
    return data.tobytes()
