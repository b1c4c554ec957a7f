"""Tiles of an image and smooth fields sampled over them.

Every level of the pyramid is rendered tile by tile, so memory stays bounded at any
size and a tile gives the same bits whether the image is cut into many tiles or one.
A field (a mask, a gain, a colour shift) lives at a low "field" resolution and is
sampled bilinearly for exactly the pixels of a tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TILE = 1024


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def grown(self, margin: int, width: int, height: int) -> Box:
        return Box(
            max(self.x0 - margin, 0),
            max(self.y0 - margin, 0),
            min(self.x1 + margin, width),
            min(self.y1 + margin, height),
        )

    def within(self, outer: Box) -> tuple[slice, slice]:
        """Slices that cut this box out of an array covering `outer`."""
        return (
            slice(self.y0 - outer.y0, self.y1 - outer.y0),
            slice(self.x0 - outer.x0, self.x1 - outer.x0),
        )


def tiles(
    width: int, height: int, size: int | None = None, centre_first: bool = False
) -> list[Box]:
    """Tiles covering the image, in rows, or from the centre outward band by band: the
    band of rows nearest the centre first (of two as near, the upper), each band's tiles
    from its middle outward. A band is whole before the next starts, so its rows are
    final, and can be stored, while the next renders."""
    size = size or TILE
    boxes = [
        Box(x, y, min(x + size, width), min(y + size, height))
        for y in range(0, height, size)
        for x in range(0, width, size)
    ]
    if centre_first:
        cx, cy = width / 2, height / 2
        boxes.sort(key=lambda b: (abs(b.y0 + b.y1 - 2 * cy), b.y0, abs(b.x0 + b.x1 - 2 * cx)))
    return boxes


def sample(field: np.ndarray, size: tuple[int, int], box: Box) -> np.ndarray:
    """Bilinear samples of `field` (covering the whole frame) at the pixel centres of
    `box` in an image of `size` (width, height) covering the same frame."""
    field_height, field_width = field.shape[:2]
    width, height = size
    xs = (np.arange(box.x0, box.x1, dtype=np.float32) + 0.5) * (field_width / width) - 0.5
    ys = (np.arange(box.y0, box.y1, dtype=np.float32) + 0.5) * (field_height / height) - 0.5
    map_x = np.ascontiguousarray(np.broadcast_to(xs, (box.height, box.width)))
    map_y = np.ascontiguousarray(np.broadcast_to(ys[:, None], (box.height, box.width)))
    return cv2.remap(
        np.ascontiguousarray(field), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
