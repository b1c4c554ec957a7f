"""The person segmentation: mediapipe's general selfie model, which says how likely each
pixel is part of a person; the skin mask lets skin reach only that far from a face."""

from __future__ import annotations

import threading

import cv2
import mediapipe as mp
import numpy as np

from ..imaging.convert import small_rgb8

SEGMENT_SIDE = 256  # the selfie model's input size


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
