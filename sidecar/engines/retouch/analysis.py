"""What every retouch op needs to know about an image, at a low "field" resolution:
its faces (478 landmarks each), its skin mask, and a float copy of its pixels.

Computed once per image and kept in the stage cache, keyed by the image id and the
stages' versions, so a second op on the same image starts from here at once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np

from ...cache.stages import StageCache, stage_key
from ...stages import face_mesh, skin
from ...stages.face_geometry import Face
from ...stages.face_mesh import FaceFinder
from ...stages.person import PersonSegmenter
from ...stages.pooled import beside, settle, taken

WARM_SIDE = 256  # the blank frame that makes the graphs ahead of the first job
FIELD_SIDE = 1024  # long side of the analysis copy; fields are smooth at this scale
VERSION = f"analysis/2+{face_mesh.VERSION}+{skin.VERSION}+{FIELD_SIDE}"


@dataclass(frozen=True)
class Analysis:
    width: int  # full resolution
    height: int
    rgb: np.ndarray  # (h, w, 3) float32 in [0, 1], the image at field resolution
    faces: tuple[Face, ...]  # in field coordinates, largest first
    mask: np.ndarray  # (h, w) float32 skin mask in [0, 1]

    @property
    def scale(self) -> float:
        """Field pixels per full-resolution pixel."""
        return self.rgb.shape[1] / self.width

    @property
    def face_width(self) -> float:
        """The main face's width in field pixels, or a nominal one when there is none,
        so that every radius scales with the portrait."""
        if self.faces:
            return max(self.faces[0].width, 8.0)
        return max(min(self.rgb.shape[:2]) / 4.0, 8.0)


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """RGB of canonical pixels as float32 in [0, 1] (alpha dropped)."""
    unit = pixels[..., :3].astype(np.float32)
    unit *= np.float32(1.0 / np.iinfo(pixels.dtype).max)
    return unit


def field_copy(pixels: np.ndarray, factor: int) -> np.ndarray:
    """The mean of every `factor` × `factor` block of `pixels`, the blocks on the far
    edges cut short where the size is not a multiple: field pixel i covers full pixels
    i·factor on, as the analysis's `scale` has it. Each part is an integer reduction,
    OpenCV's fast path (24 MP to 1000 × 667 in 27 ms, not 67)."""
    if factor <= 1:
        return pixels
    height, width = pixels.shape[:2]
    shape = (-(-height // factor), -(-width // factor), *pixels.shape[2:])
    out = np.empty(shape, pixels.dtype)
    for rows, field_rows in _spans(height, factor):
        for cols, field_cols in _spans(width, factor):
            target = out[field_rows, field_cols]
            size = (target.shape[1], target.shape[0])
            part = cv2.resize(pixels[rows, cols], size, interpolation=cv2.INTER_AREA)
            target[...] = part.reshape(target.shape)
    return out


def _spans(length: int, factor: int) -> list[tuple[slice, slice]]:
    """(full, field) spans: the whole blocks, then the short one if any."""
    whole = length // factor
    spans = [(slice(0, whole * factor), slice(0, whole))] if whole else []
    if length % factor:
        spans.append((slice(whole * factor, length), slice(whole, whole + 1)))
    return spans


def _copies(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The field image's Lab, as the skin mask reads it, and its float copy."""
    return skin.field_lab(small), to_unit_float(small)


class Analyser:
    """Owns the mediapipe graphs (created lazily on first use)."""

    def __init__(self, cache: StageCache, codec=None, pool: Executor | None = None) -> None:
        self._cache = cache
        self._codec = codec  # how an analysis goes to the cache's disk tier
        # the face search's second detector graph, and what needs no face (the person
        # segmentation, the Lab and float copies), run here beside the face search
        self._finder = FaceFinder(pool=pool)
        self._segmenter = PersonSegmenter()
        self._pool = pool

    def analyse(self, image_id: str | None, load: Callable[[], np.ndarray]) -> Analysis:
        """The image's analysis; `load` is called for its pixels only when not cached."""
        if image_id is None:
            return self._compute(load())
        key = stage_key(VERSION, image_id)
        return self._cache.get_or_compute(key, lambda: self._compute(load()), self._codec)

    def cached(self, image_id: str) -> bool:
        """Whether the image's analysis is in the cache's memory tier."""
        return stage_key(VERSION, image_id) in self._cache

    def _compute(self, pixels: np.ndarray) -> Analysis:
        height, width = pixels.shape[:2]
        small = np.ascontiguousarray(field_copy(pixels, -(-max(height, width) // FIELD_SIDE)))
        # the graphs are independent: the segmentation and the copies run beside the
        # face search (the segmentation and the Lab are only needed when there is a face)
        person = beside(self._pool, self._segmenter.person, small)
        copies = beside(self._pool, _copies, small)
        faces = tuple(self._finder.find(small))
        if faces:
            lab, unit = taken(copies, _copies, small)
            people = taken(person, self._segmenter.person, small)
            mask = skin.skin_mask(small, list(faces), people, self._pool, lab)
        else:  # no face, no skin: nothing for the person segmentation or the Lab to add
            settle(person)  # the graph is not left running
            started = copies is not None and not copies.cancel()
            unit = copies.result()[1] if started else to_unit_float(small)
            mask = np.zeros(small.shape[:2], np.float32)
        return Analysis(width, height, unit, faces, mask.astype(np.float32, copy=False))

    def warm(self) -> None:
        """Every graph made and run once, on a blank frame: no face is found, so the
        face mesh runs on the whole frame, and the person segmentation beside it."""
        self._compute(np.full((WARM_SIDE, WARM_SIDE, 3), 128, np.uint8))

    def close(self) -> None:
        self._finder.close()
        self._segmenter.close()
