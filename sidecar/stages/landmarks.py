"""Face landmarks: mediapipe's 478-point face mesh, in the input's pixel coordinates.

The full-range detector finds faces on a copy whose long side is at most `detect_side`;
the mesh then runs on a square crop around each face, sampled from the full-resolution
input, so that a face much smaller than the frame still gets a mesh at its own scale.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import mediapipe as mp
import numpy as np

VERSION = "landmarks/1"

MIN_SIDE = 16  # below this no face can be meshed; skip mediapipe altogether
CROP_SIDE = 384  # the mesh's own models work at 128 and 192 px
CROP_MARGINS = (2.0, 1.4)  # crop side / detection box side; the tighter one is a retry
SAME_FACE_IOU = 0.4  # between two meshes
SAME_FACE_OVERLAP = 0.5  # between two detections, see _overlap
MIN_TILE = 192  # the detector's input size: smaller tiles add little
FALLBACK_SCORE = 0.5  # the mesh's own detector reports no score; this is its threshold

_connections = mp.solutions.face_mesh_connections


@dataclass(frozen=True, eq=False)
class Face:
    """One face's mesh. Immutable: `points` is read-only."""

    points: np.ndarray  # (478, 2) float32, (x, y) in pixels of the image given to find()
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the face oval
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def scaled(self, factor: float) -> Face:
        return _face((self.points * np.float32(factor)).astype(np.float32), self.score)


class FaceFinder:
    """Finds up to `max_faces` faces, largest first. Safe to share between threads."""

    def __init__(self, max_faces: int = 6, detect_side: int = 1280) -> None:
        self.max_faces = max_faces
        self.detect_side = detect_side
        self._lock = threading.Lock()
        self._detector = None
        self._mesh = None

    def find(self, pixels: np.ndarray) -> list[Face]:
        height, width = check_canonical(pixels)
        if min(height, width) < MIN_SIDE or self.max_faces < 1:
            return []
        frame, to_full = _sample(pixels, 0, 0, width, height, self.detect_side)
        with self._lock:
            self._open()
            boxes = self._detect(frame, to_full)
            faces: list[Face] = []
            for box, score in boxes:
                face = self._mesh_around(pixels, box, score)
                if face is not None and not any(
                    _iou(face.box, f.box) > SAME_FACE_IOU for f in faces
                ):
                    faces.append(face)
                if len(faces) == self.max_faces:
                    break
            if not boxes:
                side = max(width, height)
                square, to_full = _sample(pixels, 0, 0, side, side, self.detect_side)
                face = self._mesh_once(square, to_full, FALLBACK_SCORE)
                faces = [face] if face is not None else []
        return sorted(faces, key=lambda f: (-f.area, f.box))

    def close(self) -> None:
        with self._lock:
            for graph in (self._detector, self._mesh):
                if graph is not None:
                    graph.close()
            self._detector = self._mesh = None

    def _open(self) -> None:
        if self._detector is None:
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5
            )
        if self._mesh is None:
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True
            )

    def _detect(self, frame: np.ndarray, to_full: _Mapping) -> list[tuple[tuple, float]]:
        """Detection boxes in full-resolution pixels with their scores, largest first."""
        frame_h, frame_w = frame.shape[:2]
        found = []
        for x0, y0, w, h in _tiles(frame_w, frame_h):
            tile = np.ascontiguousarray(frame[y0 : y0 + h, x0 : x0 + w])
            for detection in self._detector.process(tile).detections or []:
                rel = detection.location_data.relative_bounding_box
                left, top = (x0 + rel.xmin * w) / frame_w, (y0 + rel.ymin * h) / frame_h
                right = (x0 + (rel.xmin + rel.width) * w) / frame_w
                bottom = (y0 + (rel.ymin + rel.height) * h) / frame_h
                box = (*to_full(left, top), *to_full(right, bottom))
                if box[2] > box[0] and box[3] > box[1]:
                    found.append((box, float(detection.score[0])))
        kept: list[tuple[tuple, float]] = []
        for box, score in sorted(found, key=lambda b: (-b[1], b[0])):
            if not any(_overlap(box, other) > SAME_FACE_OVERLAP for other, _ in kept):
                kept.append((box, score))
        return sorted(kept, key=lambda b: (-_area(b[0]), -b[1], b[0]))

    def _mesh_around(self, pixels: np.ndarray, box: tuple, score: float) -> Face | None:
        """Mesh a square crop around a detection; keep it only if it is that face."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for margin in CROP_MARGINS:
            side = max(box[2] - box[0], box[3] - box[1]) * margin
            x0, y0 = math.floor(cx - side / 2), math.floor(cy - side / 2)
            crop, to_full = _sample(pixels, x0, y0, math.ceil(side), math.ceil(side), CROP_SIDE)
            face = self._mesh_once(crop, to_full, score)
            # the crop may hold a neighbour, which the mesh could have picked instead
            if face is not None and _contains(face.box, (cx, cy)):
                return face
        return None

    def _mesh_once(self, image: np.ndarray, to_full: _Mapping, score: float) -> Face | None:
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        rel = np.array([(m.x, m.y) for m in marks], dtype=np.float64)
        return _face(to_full.array(rel).astype(np.float32), score)


@dataclass(frozen=True)
class _Mapping:
    """From coordinates relative to a sampled image (0..1) to full-resolution pixels."""

    origin: tuple[float, float]
    span: tuple[float, float]

    def __call__(self, rx: float, ry: float) -> tuple[float, float]:
        return self.origin[0] + rx * self.span[0], self.origin[1] + ry * self.span[1]

    def array(self, rel: np.ndarray) -> np.ndarray:
        return np.asarray(self.origin) + rel * np.asarray(self.span)


def check_canonical(pixels: np.ndarray) -> tuple[int, int]:
    """(height, width) of canonical pixels; ValueError for anything else."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype.kind != "u":
        raise ValueError(f"expected canonical (H, W, 3|4) pixels, got {pixels.shape}")
    if pixels.dtype.itemsize not in (1, 2):
        raise ValueError(f"expected 8 or 16 bit pixels, got {pixels.dtype}")
    return pixels.shape[0], pixels.shape[1]


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """RGB 8-bit copy of canonical pixels (alpha dropped, 16-bit keeps its high byte)."""
    rgb = pixels[:, :, :3]
    if rgb.dtype.itemsize == 2:
        return (rgb >> 8).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def small_rgb8(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """RGB 8-bit copy of canonical pixels whose long side is at most `long_side`."""
    height, width = check_canonical(pixels)
    return _sample(pixels, 0, 0, width, height, long_side)[0]


def _sample(
    pixels: np.ndarray, x0: int, y0: int, width: int, height: int, long_side: int
) -> tuple[np.ndarray, _Mapping]:
    """RGB 8-bit copy of pixels[y0:y0+height, x0:x0+width], black outside the image,
    downscaled so its long side is at most `long_side`.

    Huge inputs are first decimated by a whole step (still at least twice the target
    size), so that INTER_AREA never has to read hundreds of megapixels.
    """
    h, w = pixels.shape[:2]
    step = max(1, int(max(width, height) / (2 * long_side)))
    cols, rows = math.ceil(width / step), math.ceil(height / step)
    # sample i of the canvas is input pixel x0 + step * i; keep the ones inside the image
    i0, i1 = max(0, -(x0 // step)), min(cols, (w - 1 - x0) // step + 1)
    j0, j1 = max(0, -(y0 // step)), min(rows, (h - 1 - y0) // step + 1)
    canvas = np.zeros((rows, cols, 3), np.uint8)
    if i1 > i0 and j1 > j0:
        xs = slice(x0 + step * i0, x0 + step * (i1 - 1) + 1, step)
        ys = slice(y0 + step * j0, y0 + step * (j1 - 1) + 1, step)
        canvas[j0:j1, i0:i1] = to_rgb8(pixels[ys, xs])
    scale = min(1.0, long_side / max(rows, cols))
    if scale < 1.0:
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    # a canvas pixel's centre (i + 0.5) is input pixel x0 + step * i's centre
    offset = 0.5 * (1 - step)
    return canvas, _Mapping((x0 + offset, y0 + offset), (step * cols, step * rows))


def _face(points: np.ndarray, score: float) -> Face:
    points.setflags(write=False)
    oval = points[FACE_OVAL]
    x0, y0 = oval.min(axis=0)
    x1, y1 = oval.max(axis=0)
    return Face(points, (float(x0), float(y0), float(x1), float(y1)), score)


def _tiles(width: int, height: int):
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


def _contains(box: tuple, point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _area(box: tuple) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a: tuple, b: tuple) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _iou(a: tuple, b: tuple) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box: a tile's half-face inside a whole one is 1."""
    smaller = min(_area(a), _area(b))
    return _intersection(a, b) / smaller if smaller > 0 else 0.0


# Landmark groups, as closed polygons of mesh indices.


def _walk(edges: frozenset) -> list[list[int]]:
    """Mediapipe's unordered edges as chains: loops, or open paths from their lower end."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    chains, seen = [], set()
    ends = sorted(n for n, near in neighbours.items() if len(near) == 1)
    for start in ends + sorted(neighbours):
        if start in seen:
            continue
        chain = [start]
        seen.add(start)
        while nxt := sorted(n for n in neighbours[chain[-1]] if n not in seen):
            chain.append(nxt[0])
            seen.add(nxt[0])
        chains.append(chain)
    return chains


def _loop(edges: frozenset, containing: int | None = None) -> list[int]:
    chains = _walk(edges)
    if containing is not None:
        chains = [c for c in chains if containing in c]
    if len(chains) == 2:  # the brows: upper and lower edge, both walked outer to inner
        return chains[0] + chains[1][::-1]
    return chains[0]


FACE_OVAL = _loop(_connections.FACEMESH_FACE_OVAL)
LEFT_EYE = _loop(_connections.FACEMESH_LEFT_EYE)
RIGHT_EYE = _loop(_connections.FACEMESH_RIGHT_EYE)
LEFT_BROW = _loop(_connections.FACEMESH_LEFT_EYEBROW)
RIGHT_BROW = _loop(_connections.FACEMESH_RIGHT_EYEBROW)
LIPS = _loop(_connections.FACEMESH_LIPS, containing=0)  # the outer contour
LEFT_IRIS = _loop(_connections.FACEMESH_LEFT_IRIS)
RIGHT_IRIS = _loop(_connections.FACEMESH_RIGHT_IRIS)
# nostril openings and the base of the alae, picked on the mesh by eye
RIGHT_NOSTRIL = [64, 219, 218, 237, 125, 241, 242, 97, 98]
LEFT_NOSTRIL = [294, 439, 438, 457, 354, 461, 462, 326, 327]

GROUPS: dict[str, list[list[int]]] = {
    "face_oval": [FACE_OVAL],
    "eyes": [LEFT_EYE, RIGHT_EYE],
    "irises": [LEFT_IRIS, RIGHT_IRIS],
    "brows": [LEFT_BROW, RIGHT_BROW],
    "lips": [LIPS],
    "nostrils": [LEFT_NOSTRIL, RIGHT_NOSTRIL],
}


def region_polygons(face: Face) -> dict[str, list[np.ndarray]]:
    """Each named region of a face as (N, 2) float32 polygons in the face's coordinates."""
    return {
        name: [face.points[indices].copy() for indices in loops] for name, loops in GROUPS.items()
    }
