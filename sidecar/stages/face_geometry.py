"""A face as the mesh gives it: 478 points in pixels, its box, and the mesh's topology
(which points outline the eyes, brows, lips, nostrils and the face oval).

Plain numpy; mediapipe is read only for its lists of mesh edges, at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mediapipe.python.solutions import face_mesh_connections as _connections


@dataclass(frozen=True, eq=False)
class Face:
    """One face's mesh. Immutable: `points` is read-only."""

    points: np.ndarray  # (478, 2) float32, (x, y) in pixels of the image it was found in
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the face oval
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def scaled(self, factor: float) -> Face:
        return face_from_points((self.points * np.float32(factor)).astype(np.float32), self.score)


def face_from_points(points: np.ndarray, score: float) -> Face:
    """A Face from its (478, 2) float32 points (made read-only here); the box is the
    face oval's bounds."""
    points.setflags(write=False)
    oval = points[FACE_OVAL]
    x0, y0 = oval.min(axis=0)
    x1, y1 = oval.max(axis=0)
    return Face(points, (float(x0), float(y0), float(x1), float(y1)), score)


# Boxes are (x0, y0, x1, y1) tuples in pixels.


def box_contains(box: tuple, point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def box_area(box: tuple) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_intersection(a: tuple, b: tuple) -> float:
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def box_iou(a: tuple, b: tuple) -> float:
    """Intersection over union."""
    inter = box_intersection(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box: a tile's half-face inside a whole one is 1."""
    smaller = min(box_area(a), box_area(b))
    return box_intersection(a, b) / smaller if smaller > 0 else 0.0


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
