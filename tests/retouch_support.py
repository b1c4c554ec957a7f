"""Running the retouch engine directly, and measuring what it did to skin."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from sidecar.cache.stages import StageCache
from sidecar.engines import Preempted, RunInput
from sidecar.engines.retouch import RetouchEngine, RetouchResume
from sidecar.engines.retouch.analysis import Analysis
from sidecar.engines.retouch.tiles import Box, sample
from sidecar.schema import JobRequest

FAKE_ID = "ab" * 32


@dataclass
class RecordingContext:
    """A JobContext that keeps what the engine reported; `preempt_at` raises Preempted
    at that progress report, as the worker does when an active job waits."""

    stages: list[str] = field(default_factory=list)
    progress_values: list[float] = field(default_factory=list)
    previews: list[tuple[str, tuple[int, int], int | None, int | None]] = field(
        default_factory=list
    )
    preempt_at: int | None = None

    def stage(self, name, index, count):
        self.stages.append(name)

    def progress(self, fraction):
        self.progress_values.append(fraction)
        if self.preempt_at is not None and len(self.progress_values) == self.preempt_at:
            self.preempt_at = None
            raise Preempted

    def preview(self, level, rgb, *, step=None, total_steps=None):
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
        self.previews.append((level, rgb.shape[:2], step, total_steps))

    def checkpoint(self):
        pass


def run_op(
    engine: RetouchEngine,
    pixels: np.ndarray,
    op: str,
    *,
    intensity: float = 1.0,
    image_id: str | None = FAKE_ID,
    ctx: RecordingContext | None = None,
    resume: RetouchResume | None = None,
    on_rows=None,
    **params,
) -> np.ndarray:
    request = JobRequest.model_validate(
        {"op": op, "image_id": image_id or FAKE_ID, "intensity": intensity, "params": params}
    )
    if image_id is None:
        request = request.model_copy(update={"image_id": None})
    job = RunInput(request=request, seed=0, pixels=pixels, resume=resume, on_rows=on_rows)
    return engine.run(job, ctx or RecordingContext())


def new_engine() -> RetouchEngine:
    return RetouchEngine(StageCache())


def full_res(field_: np.ndarray, width: int, height: int) -> np.ndarray:
    return sample(field_, (width, height), Box(0, 0, width, height))


def skin_core(analysis: Analysis) -> np.ndarray:
    """Pixels (full resolution) that are surely skin."""
    return full_res(analysis.mask, analysis.width, analysis.height) > 0.9


def untouched_region(analysis: Analysis) -> np.ndarray:
    """Pixels (full resolution) where the skin mask is exactly zero."""
    return full_res(analysis.mask, analysis.width, analysis.height) == 0


def luma(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3].astype(np.float32) / np.iinfo(pixels.dtype).max
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def lab(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3].astype(np.float32) / np.iinfo(pixels.dtype).max
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)


def band(image: np.ndarray, fine: float, coarse: float) -> np.ndarray:
    """The band between two Gaussian scales (fine may be 0: the image itself)."""
    low = cv2.GaussianBlur(image, (0, 0), coarse)
    high = cv2.GaussianBlur(image, (0, 0), fine) if fine else image
    return high - low
