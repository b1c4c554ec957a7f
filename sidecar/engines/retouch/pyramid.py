"""Rendering a plan: a 1/8 draft for someone watching, then the final level.

The draft is rendered only while someone watches the job (the front document's Apply):
it is the first thing they see. The final level goes tile by tile, those its op leaves
as they are first, then from the centre outward band by band (`final_boxes`); while
someone watches, finished tiles are pasted into a preview-sized canvas (`FinalCanvas`,
over the draft) that is sent as they complete. What is finished survives a
pre-emption (kept in the job's resume state, `TiledFinal`). The final's tiles run on
a small thread pool, OpenCV's own threads set to one meanwhile: a tile reads only the
input and writes only its own box of the result, so the bits do not depend on how many
tiles run at once, nor on whether anyone watched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...imaging.convert import rgb8_rounded
from ...imaging.encode import fit_within
from .analysis import to_unit_float
from .ops import Plan, halo, render, touches
from .tiles import Box, tiles

LEVELS = (("draft", 8), ("final", 1))
TILED_FINAL_PIXELS = 16_000_000  # over this, a watcher sees the final tile by tile
PREVIEW_SIDE = 1024
PREVIEW_INTERVAL = 0.25  # seconds between tile previews of the final level
FINAL_THREADS = 2  # tiles of the final level rendered at once (the engine's pool)
SMALLEST_LEVEL = 24  # px on the long side; smaller draft levels are skipped


def levels_for(width: int, height: int, progressive: bool) -> list[tuple[str, int]]:
    if not progressive:
        return [("final", 1)]
    chosen = []
    for name, divisor in LEVELS:
        if divisor > 1 and max(width, height) / divisor < SMALLEST_LEVEL:
            continue
        chosen.append((name, divisor))
    return chosen


def level_size(width: int, height: int, divisor: int) -> tuple[int, int]:
    return max(1, round(width / divisor)), max(1, round(height / divisor))


def downscale(pixels: np.ndarray, divisor: int) -> np.ndarray:
    if divisor == 1:
        return pixels
    height, width = pixels.shape[:2]
    size = level_size(width, height, divisor)
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def preview_of(pixels: np.ndarray) -> np.ndarray:
    return rgb8_rounded(fit_within(pixels, PREVIEW_SIDE), pixels.dtype.itemsize * 8)


class LevelRender:
    """One level of one job, rendered into `result` a tile at a time."""

    def __init__(
        self,
        plan: Plan,
        pixels: np.ndarray,
        level_scale: float,
        t: float,
        out: np.ndarray | None = None,
        resumed: bool = False,
    ) -> None:
        """`out`: where the result goes (a new array when None); `resumed`: `out` is
        a result rendered in part already, kept as it is."""
        self.plan = plan
        self.pixels = pixels
        self.level_scale = level_scale
        self.t = t
        self.height, self.width = pixels.shape[:2]
        if out is None:  # the result starts as the input: untouched tiles keep its bits
            self.result = pixels.copy()
        else:
            if not resumed:
                np.copyto(out, pixels)
            self.result = out
        self._halo = halo(plan, level_scale)
        self._max = float(np.iinfo(pixels.dtype).max)

    def tile(self, box: Box) -> None:
        size = (self.width, self.height)
        if not touches(self.plan, size, box):
            return  # nothing changes here: the copy already holds the input's bits
        outer = box.grown(self._halo, self.width, self.height)
        rgb = to_unit_float(self.pixels[outer.y0 : outer.y1, outer.x0 : outer.x1])
        out = render(self.plan, rgb, outer, box, size, self.level_scale, self.t)
        del rgb
        out *= np.float32(self._max)
        np.rint(out, out=out)
        np.clip(out, 0.0, self._max, out=out)
        target = self.result[box.y0 : box.y1, box.x0 : box.x1, :3]
        np.copyto(target, out, casting="unsafe")  # the cast astype() would make


@dataclass
class TiledFinal:
    """A tiled final level so far: the tiles rendered and the image they are in."""

    tiles_done: set[int] = field(default_factory=set)
    result: np.ndarray | None = None


class FinalCanvas:
    """What a watcher sees of the final level: a preview-sized image (the draft, scaled
    up) that finished tiles are pasted into, sent at most every `PREVIEW_INTERVAL`."""

    def __init__(self, under: np.ndarray, width: int, height: int) -> None:
        side = min(PREVIEW_SIDE, max(width, height))
        scale = side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = under if under.shape[1::-1] == size else cv2.resize(under, size)
        self.pixels = rgb8_rounded(small, under.dtype.itemsize * 8)
        self.scale = size[0] / width
        self._last = 0.0

    def paste(self, result: np.ndarray, box: Box) -> None:
        _paste(self.pixels, result, box, self.scale)

    def due(self, last_tile: bool) -> bool:
        now = time.monotonic()
        if last_tile or now - self._last >= PREVIEW_INTERVAL:
            self._last = now
            return True
        return False


def final_boxes(render_: LevelRender) -> list[Box]:
    """The final's tiles in the order they go: first those the op leaves as they are
    (nothing to render, so a band of only those is finished, and its rows written
    ahead, at once), then the rest from the centre outward, band by band."""
    size = (render_.width, render_.height)
    boxes = tiles(*size, centre_first=True)
    return sorted(boxes, key=lambda box: touches(render_.plan, size, box))


class Bands:
    """The final's tiles by band of rows: which bands are finished (every tile across
    them done), so their rows can be stored while the rest renders."""

    def __init__(self, boxes: list[Box], done: set[int]) -> None:
        self._left: dict[tuple[int, int], int] = {}
        for index, box in enumerate(boxes):
            if index not in done:
                self._left[box.y0, box.y1] = self._left.get((box.y0, box.y1), 0) + 1
        every = {(b.y0, b.y1) for b in boxes}
        self._count = len(every)
        self._finished = sorted(every - set(self._left))

    def __len__(self) -> int:
        return self._count

    def finished(self) -> list[tuple[int, int]]:
        """The bands finished before any tile of this render: each once, top first."""
        return list(self._finished)

    def finish(self, box: Box) -> bool:
        """A tile is done; whether that finished its band."""
        band = (box.y0, box.y1)
        if band not in self._left:
            return False
        self._left[band] -= 1
        if self._left[band]:
            return False
        del self._left[band]
        return True


def render_final_tiled(
    so_far: TiledFinal,
    render_: LevelRender,
    report: Callable[[int, int, Box], None],
    pool: Executor | None = None,
    threads: int = FINAL_THREADS,
    on_tile: Callable[[Box], None] | None = None,
) -> np.ndarray:
    """The final level, centre tiles first. `report(done, total, box)` is called after
    every tile (a step boundary; it may raise), `on_tile(box)` for every tile finished,
    reported or not. `so_far` is where a pre-empted render left off, and records this
    one's tiles.

    With a `pool`, up to `threads` tiles render at once, OpenCV's own threads at one;
    a new tile starts only after a report, and when a report raises (cancel,
    pre-emption) no more start: the running ones are finished and kept, then it raises."""
    boxes = final_boxes(render_)
    done = so_far.tiles_done
    if so_far.result is not None:
        render_.result = so_far.result
    so_far.result = render_.result

    def finish(index: int, announce: bool = True) -> None:
        done.add(index)
        if on_tile is not None:
            on_tile(boxes[index])
        if announce:
            report(len(done), len(boxes), boxes[index])

    todo = [index for index in range(len(boxes)) if index not in done]
    if pool is None or threads < 2 or len(todo) < 2:
        for index in todo:
            render_.tile(boxes[index])
            finish(index)
        return render_.result
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        _render_on_pool(pool, threads, render_, boxes, todo, finish)
    finally:
        cv2.setNumThreads(opencv_threads)
    return render_.result


def _render_on_pool(
    pool: Executor,
    threads: int,
    render_: LevelRender,
    boxes: list[Box],
    todo: list[int],
    finish: Callable[..., None],
) -> None:
    queue = iter(todo)
    running: dict[Future, int] = {}

    def start_next() -> None:
        index = next(queue, None)
        if index is not None:
            running[pool.submit(render_.tile, boxes[index])] = index

    for _ in range(threads):
        start_next()
    try:
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=running.__getitem__):
                index = running.pop(future)
                future.result()  # a tile's own error
                finish(index)  # the step boundary: may raise Cancelled or Preempted
                start_next()
    except BaseException:
        # start nothing more; the tiles already running finish and count as done
        wait(running)
        for future, index in sorted(running.items(), key=lambda item: item[1]):
            if future.exception() is None:
                finish(index, announce=False)
        raise


def _paste(canvas: np.ndarray, result: np.ndarray, box: Box, scale: float) -> None:
    x0, y0 = int(box.x0 * scale), int(box.y0 * scale)
    x1 = min(max(int(round(box.x1 * scale)), x0 + 1), canvas.shape[1])
    y1 = min(max(int(round(box.y1 * scale)), y0 + 1), canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    piece = result[box.y0 : box.y1, box.x0 : box.x1]
    small = cv2.resize(piece, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    canvas[y0:y1, x0:x1] = rgb8_rounded(
        small.reshape(y1 - y0, x1 - x0, -1), result.dtype.itemsize * 8
    )
