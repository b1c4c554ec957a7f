"""A synthetic engine: N steps of real work on the image, reporting like a real one.

It exists to drive and measure the scheduler (queue order, pre-emption, cancel,
events) without the retouch or diffusion engines: each step sleeps for `step_ms`
(default 50) and blurs a working copy a little, every step is a step boundary,
and every `preview_every` steps a preview goes out. The result is a real image:
the input, softened. Params: steps (1..1000), step_ms (0..10000), preview_every,
preview_side (16..2048 px, default 256), soften (default true; false leaves the
pixels as they are, so previews keep full detail when measuring transport).
Not registered by default; `retouch-sidecar serve --engine synthetic` adds it.
A test that needs to know where a job is attaches a `Stepper` (`engine.stepper`):
each step then waits for the test's release instead of sleeping (see stepping.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..imaging.convert import rgb8_rounded
from ..imaging.encode import fit_within
from ..schema import Op
from .base import Engine, JobContext, RunInput
from .stepping import Stepper

PREVIEW_SIDE = 256


@dataclass
class SyntheticResume:
    """A pre-empted run's softened copy and the steps it took."""

    work: np.ndarray | None = None
    steps_done: int = 0


class SyntheticEngine(Engine):
    name = "synthetic"
    version = "synthetic/2"
    ops = frozenset({Op.beauty, Op.dodge_burn, Op.volume, Op.color})
    stepper: Stepper | None = None  # when set, steps wait for its releases, not step_ms

    def run(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        params = job.request.params
        steps = int(min(max(int(params.get("steps", 10)), 1), 1000))
        step_s = min(max(float(params.get("step_ms", 50)), 0.0), 10_000.0) / 1000.0
        preview_every = max(int(params.get("preview_every", 1)), 1)
        preview_side = min(max(int(params.get("preview_side", PREVIEW_SIDE)), 16), 2048)
        soften = bool(params.get("soften", True))
        pixels = job.image()
        resume = job.resume_state(SyntheticResume)
        work = resume.work if resume.work is not None else pixels.astype(np.float32)
        ctx.stage("synthetic", 0, 1)
        for step in range(resume.steps_done, steps):
            ctx.checkpoint()
            started = time.perf_counter()
            if soften:
                work = cv2.GaussianBlur(work, (3, 3), 0)
            if self.stepper is not None:
                self.stepper.step(job.job_id or "", step + 1)
            elif (left := step_s - (time.perf_counter() - started)) > 0:
                time.sleep(left)
            resume.work, resume.steps_done = work, step + 1
            ctx.progress((step + 1) / steps)
            if (step + 1) % preview_every == 0 or step + 1 == steps:
                depth = pixels.dtype.itemsize * 8
                thumb = rgb8_rounded(fit_within(work, preview_side), depth)
                ctx.preview("step", thumb, step=step + 1, total_steps=steps)
        limit = 255 if pixels.dtype == np.uint8 else 65535
        return np.clip(np.rint(work), 0, limit).astype(pixels.dtype)
