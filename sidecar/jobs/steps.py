"""One run of a job: what the scheduler hands the worker (`Run`), and the context its
engine reports through (`StepContext`), where every report is a step boundary."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..cache import ImageStore
from ..cache.result_file import ResultFile
from ..engines import Cancelled, Engine, Preempted, RunInput
from ..imaging.buffers import BufferPool
from ..imaging.encode import encode_jpeg
from ..schema import events as ev
from .eta import EtaModel
from .model import Job

Emit = Callable[..., None]  # emit(job, event kind, jpeg=None, **fields)


class StepContext:
    """The engine's JobContext for one run: it names stages, reports progress with an
    ETA and hands on previews as events, and at each of those step boundaries raises
    `Cancelled` (the job was cancelled) or `Preempted` (`must_yield()`: the worker is
    stopping or a more urgent job waits)."""

    def __init__(
        self,
        job: Job,
        *,
        megapixels: float,
        emit: Emit,
        must_yield: Callable[[], bool],
        eta: EtaModel,
    ) -> None:
        self._job = job
        self.megapixels = megapixels
        self._emit = emit
        self._must_yield = must_yield
        self._eta = eta
        self._started = time.monotonic()

    def checkpoint(self) -> None:
        if self._job.cancel_requested:
            raise Cancelled
        if self._must_yield():
            raise Preempted

    def stage(self, name: str, index: int, count: int) -> None:
        self._job.stage = name
        self._emit(self._job, ev.StageEvent, stage=name, index=index, count=count)
        self.checkpoint()

    def progress(self, fraction: float) -> None:
        job = self._job
        job.progress = min(max(fraction, job.progress), 1.0)
        elapsed = job.run_seconds + (time.monotonic() - self._started)
        job.eta_s = self._eta.eta(job.request.op, self.megapixels, job.progress, elapsed)
        self._emit(job, ev.Progress, progress=job.progress, stage=job.stage or "", eta_s=job.eta_s)
        self.checkpoint()

    def preview(self, level, rgb: np.ndarray, *, step=None, total_steps=None) -> None:
        height, width = rgb.shape[:2]
        self._emit(
            self._job,
            ev.PreviewHeader,
            encode_jpeg(rgb),
            level=level,
            step=step,
            total_steps=total_steps,
            width=width,
            height=height,
        )
        self.checkpoint()

    def elapsed(self) -> float:
        return time.monotonic() - self._started


class ResultRows:
    """Where a run's result rows go as they become final: a file in the image store,
    opened at the first band (cache.ResultFile), taken with the result when the run
    completes, discarded when it ends any other way."""

    def __init__(self, images: ImageStore) -> None:
        self._images = images
        self._file: ResultFile | None = None

    def __call__(self, pixels: np.ndarray, y0: int, y1: int) -> None:
        if self._file is None:
            self._file = self._images.result_file()
        self._file.rows(pixels, y0, y1)

    def take(self) -> ResultFile | None:
        file, self._file = self._file, None
        return file

    def discard(self) -> None:
        file = self.take()
        if file is not None:
            file.discard()


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of `job`, from the scheduler's `begin` to the worker's report: the
    worker calls `engine.run(input, steps)`."""

    job: Job
    engine: Engine
    input: RunInput
    steps: StepContext
    rows: ResultRows

    def give_back_input(self, buffers: BufferPool) -> None:
        """The run is over: its input's buffer goes back to `buffers` (unless someone
        else still holds it: `give_array` checks)."""
        pixels, self.input.pixels = self.input.pixels, None
        if pixels is not None:
            buffers.give_array(pixels)
        self.rows.discard()  # rows of a result that was not kept


def prepare_run(
    job: Job,
    engine: Engine,
    images: ImageStore,
    *,
    emit: Emit,
    must_yield: Callable[[], bool],
    eta: EtaModel,
    watching: Callable[[str], bool],
) -> Run | None:
    """How to run `job` now: its engine, its input (the pixels are read on first use,
    with what a pre-empted run left, and whether anyone follows it: `watching(job_id)`)
    and its step context; None when its image is no longer stored."""
    request = job.request
    rows = ResultRows(images)
    run_input = RunInput(
        request=request,
        seed=job.seed,
        job_id=job.job_id,
        resume=job.resume,
        # a precompute makes the likely Apply ahead, for nobody to watch
        watched=lambda: not job.precompute and watching(job.job_id),
        ahead=job.precompute,
        buffers=images.buffers,
        on_rows=rows,
    )
    megapixels = 1.0
    if request.image_id is not None:
        info = images.info(request.image_id)
        if info is None:
            return None
        megapixels = info.width * info.height / 1e6
        run_input.size = (info.width, info.height)
        run_input.loader = functools.partial(images.load, request.image_id)
    steps = StepContext(job, megapixels=megapixels, emit=emit, must_yield=must_yield, eta=eta)
    return Run(job=job, engine=engine, input=run_input, steps=steps, rows=rows)
