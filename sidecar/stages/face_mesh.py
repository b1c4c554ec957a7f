"""Face landmarks: mediapipe's 478-point face mesh, in the input's pixel coordinates.

The full-range detector finds faces on a copy whose long side is at most `detect_side`;
the mesh then runs on a square crop around each face, sampled from the full-resolution
input, so that a face much smaller than the frame still gets a mesh at its own scale.
What a face is (its points, box and regions) lives in `face_geometry`.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Executor

import mediapipe as mp
import numpy as np

from ..imaging.convert import SampleFrame, sample_rgb8
from ..imaging.pixels import check_canonical
from . import pooled
from .face_geometry import (
    Face,
    box_area,
    box_contains,
    box_iou,
    box_overlap,
    face_from_points,
)

VERSION = "landmarks/1"  # the stage's name in cache keys, unchanged by the module's move

MIN_SIDE = 16  # below this no face can be meshed; skip mediapipe altogether
CROP_SIDE = 384  # the mesh's own models work at 128 and 192 px
CROP_MARGINS = (2.0, 1.4)  # crop side / detection box side; the tighter one is a retry
SAME_FACE_IOU = 0.4  # between two meshes
SAME_FACE_OVERLAP = 0.5  # between two detections, see box_overlap
MIN_TILE = 192  # the detector's input size: smaller tiles add little
FALLBACK_SCORE = 0.5  # the mesh's own detector reports no score; this is its threshold


class FaceFinder:
    """Finds up to `max_faces` faces, largest first. Safe to share between threads.

    With a `pool`, a second detector graph works through the detector's windows there
    beside the caller's own (the same faces: each window's detections are kept in the
    windows' order, whichever graph saw it)."""

    def __init__(
        self, max_faces: int = 6, detect_side: int = 1280, pool: Executor | None = None
    ) -> None:
        self.max_faces = max_faces
        self.detect_side = detect_side
        self._pool = pool
        self._lock = threading.Lock()
        self._detectors: list = []  # the caller's graph, then the pool's
        self._mesh = None

    def find(self, pixels: np.ndarray) -> list[Face]:
        height, width = check_canonical(pixels)
        if min(height, width) < MIN_SIDE or self.max_faces < 1:
            return []
        frame, to_full = sample_rgb8(pixels, 0, 0, width, height, self.detect_side)
        with self._lock:
            self._open()
            boxes = self._detect(frame, to_full)
            faces: list[Face] = []
            for box, score in boxes:
                face = self._mesh_around(pixels, box, score)
                if face is not None and not any(
                    box_iou(face.box, f.box) > SAME_FACE_IOU for f in faces
                ):
                    faces.append(face)
                if len(faces) == self.max_faces:
                    break
            if not boxes:
                side = max(width, height)
                square, to_full = sample_rgb8(pixels, 0, 0, side, side, self.detect_side)
                face = self._mesh_once(square, to_full, FALLBACK_SCORE)
                faces = [face] if face is not None else []
        return sorted(faces, key=lambda f: (-f.area, f.box))

    def close(self) -> None:
        with self._lock:
            for graph in (*self._detectors, self._mesh):
                if graph is not None:
                    graph.close()
            self._detectors, self._mesh = [], None

    def _open(self) -> None:
        while len(self._detectors) < (1 if self._pool is None else 2):
            self._detectors.append(
                mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=0.5
                )
            )
        if self._mesh is None:
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True
            )

    def _detect(self, frame: np.ndarray, to_full: SampleFrame) -> list[tuple[tuple, float]]:
        """Detection boxes in full-resolution pixels with their scores, largest first."""
        windows = list(_detector_windows(frame.shape[1], frame.shape[0]))
        per_window: list[list[tuple[tuple, float]]] = [[] for _ in windows]
        pending, claim = iter(range(len(windows))), threading.Lock()

        def work(detector) -> None:  # takes the next window until none is left
            while True:
                with claim:
                    index = next(pending, None)
                if index is None:
                    return
                per_window[index] = _detections(detector, frame, windows[index], to_full)

        helper = None
        if len(self._detectors) > 1 and len(windows) > 1:
            helper = self._pool.submit(work, self._detectors[1])
        try:
            work(self._detectors[0])
        finally:  # a helper that has not started has nothing left to do
            pooled.settle(helper)
        found = [hit for hits in per_window for hit in hits]
        kept: list[tuple[tuple, float]] = []
        for box, score in sorted(found, key=lambda b: (-b[1], b[0])):
            if not any(box_overlap(box, other) > SAME_FACE_OVERLAP for other, _ in kept):
                kept.append((box, score))
        return sorted(kept, key=lambda b: (-box_area(b[0]), -b[1], b[0]))

    def _mesh_around(self, pixels: np.ndarray, box: tuple, score: float) -> Face | None:
        """Mesh a square crop around a detection; keep it only if it is that face."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for margin in CROP_MARGINS:
            side = max(box[2] - box[0], box[3] - box[1]) * margin
            x0, y0 = math.floor(cx - side / 2), math.floor(cy - side / 2)
            crop, to_full = sample_rgb8(pixels, x0, y0, math.ceil(side), math.ceil(side), CROP_SIDE)
            face = self._mesh_once(crop, to_full, score)
            # the crop may hold a neighbour, which the mesh could have picked instead
            if face is not None and box_contains(face.box, (cx, cy)):
                return face
        return None

    def _mesh_once(self, image: np.ndarray, to_full: SampleFrame, score: float) -> Face | None:
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        rel = np.array([(m.x, m.y) for m in marks], dtype=np.float64)
        return face_from_points(to_full.points(rel).astype(np.float32), score)


def _detections(
    detector, frame: np.ndarray, window: tuple, to_full: SampleFrame
) -> list[tuple[tuple, float]]:
    """One window's detection boxes in full-resolution pixels, with their scores."""
    frame_h, frame_w = frame.shape[:2]
    x0, y0, w, h = window
    found = []
    tile = np.ascontiguousarray(frame[y0 : y0 + h, x0 : x0 + w])
    for detection in detector.process(tile).detections or []:
        rel = detection.location_data.relative_bounding_box
        left, top = (x0 + rel.xmin * w) / frame_w, (y0 + rel.ymin * h) / frame_h
        right = (x0 + (rel.xmin + rel.width) * w) / frame_w
        bottom = (y0 + (rel.ymin + rel.height) * h) / frame_h
        box = (*to_full.point(left, top), *to_full.point(right, bottom))
        if box[2] > box[0] and box[3] > box[1]:
            found.append((box, float(detection.score[0])))
    return found


def _detector_windows(width: int, height: int):
    """Windows for the detector, which squashes what it is given to 192 px and misses
    faces under about 7% of that: the whole frame (square windows along a long strip),
    then overlapping tiles half that size (faces down to ~3.5% of the frame; a third
    would reach ~2.3% but costs twice the detector calls on every Apply)."""
    short, long = min(width, height), max(width, height)
    side = long if long <= 2 * short or short < MIN_SIDE else short
    yield from _grid(width, height, side)
    if math.ceil(side / 2) >= MIN_TILE:
        yield from _grid(width, height, math.ceil(side / 2))


def _grid(width: int, height: int, side: int):
    stride = side * 3 // 4  # the overlap holds any face the coarser pass can miss
    for y0 in _starts(height, side, stride):
        for x0 in _starts(width, side, stride):
            yield x0, y0, min(side, width), min(side, height)


def _starts(length: int, side: int, stride: int) -> list[int]:
    if length <= side:
        return [0]
    return [*range(0, length - side, stride), length - side]
