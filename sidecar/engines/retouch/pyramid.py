"""Rendering a plan level by level: draft 1/8 → preview 1/4 → refine 1/2 → final.

Each level is rendered in tiles and sent as a preview when done. Over 16 MP the final
level goes tile by tile from the centre outward, with previews as tiles complete, and
what is finished survives a pre-emption (kept in the job's resume state, `TiledFinal`).
The final's tiles may run on a small thread pool, OpenCV's own threads set to one
meanwhile: a tile reads only the input and writes only its own box of the result, so
the bits do not depend on how many tiles run at once.
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

LEVELS = (("draft", 8), ("preview", 4), ("refine", 2), ("final", 1))
TILED_FINAL_PIXELS = 16_000_000
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

    def __init__(self, plan: Plan, pixels: np.ndarray, level_scale: float, t: float) -> None:
        self.plan = plan
        self.pixels = pixels
        self.level_scale = level_scale
        self.t = t
        self.height, self.width = pixels.shape[:2]
        self.result = pixels.copy()
        self._halo = halo(plan, level_scale)
        self._max = float(np.iinfo(pixels.dtype).max)

    def tile(self, box: Box) -> None:
        size = (self.width, self.height)
        if not touches(self.plan, size, box):
            return  # nothing changes here: the copy already holds the input's bits
        outer = box.grown(self._halo, self.width, self.height)
        rgb = to_unit_float(self.pixels[outer.y0 : outer.y1, outer.x0 : outer.x1])
        out = render(self.plan, rgb, outer, box, size, self.level_scale, self.t)
        out *= np.float32(self._max)
        np.rint(out, out=out)
        np.clip(out, 0.0, self._max, out=out)
        self.result[box.y0 : box.y1, box.x0 : box.x1, :3] = out.astype(self.pixels.dtype)


@dataclass
class TiledFinal:
    """A tiled final level so far: the tiles rendered and the image they are in."""

    tiles_done: set[int] = field(default_factory=set)
    result: np.ndarray | None = None


def render_final_tiled(
    so_far: TiledFinal,
    render_: LevelRender,
    canvas: np.ndarray,
    report: Callable[[int, int, np.ndarray | None], None],
    pool: Executor | None = None,
    threads: int = FINAL_THREADS,
) -> np.ndarray:
    """The final level of a large image, centre tiles first. `canvas` is a preview-sized
    image (the refine level) that finished tiles are pasted into; `report(done, total,
    preview_or_None)` is called after every tile (a step boundary). `so_far` is where
    a pre-empted render left off, and records this one's tiles.

    With a `pool`, up to `threads` tiles render at once, OpenCV's own threads at one;
    a new tile starts only after a report, and when a report raises (cancel,
    pre-emption) no more start: the running ones are finished and kept, then it raises."""
    boxes = tiles(render_.width, render_.height, centre_first=True)
    done = so_far.tiles_done
    if so_far.result is not None:
        render_.result = so_far.result
    so_far.result = render_.result
    scale = canvas.shape[1] / render_.width
    last_preview = [0.0]

    def finish(index: int, announce: bool = True) -> None:
        done.add(index)
        _paste(canvas, render_.result, boxes[index], scale)
        if not announce:
            return
        now = time.monotonic()
        if len(done) == len(boxes) or now - last_preview[0] >= PREVIEW_INTERVAL:
            last_preview[0] = now
            report(len(done), len(boxes), canvas)
        else:
            report(len(done), len(boxes), None)

    todo = [index for index in range(len(boxes)) if index not in done]
    if pool is None or threads < 2:
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
