"""The one worker thread that owns the GPU: it runs jobs one at a time, and at every
step boundary asks whether its job was cancelled or must give way to an active one.
The event loop never runs model work."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from ..engines import Cancelled, ImageGone, Preempted, RunInput
from ..imaging.encode import encode_jpeg
from ..schema import ErrorDetail, JobState
from ..schema import events as ev
from .model import Job, now

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger(__name__)


class StepContext:
    """What an engine reports through; every call is a step boundary."""

    def __init__(self, scheduler: Scheduler, job: Job, megapixels: float) -> None:
        self._scheduler = scheduler
        self._job = job
        self._megapixels = megapixels
        self._started = time.monotonic()

    def checkpoint(self) -> None:
        if self._job.cancel_requested:
            raise Cancelled
        if self._scheduler.stopping or self._scheduler.queue.should_yield(self._job):
            raise Preempted

    def stage(self, name: str, index: int, count: int) -> None:
        self._job.stage = name
        self._scheduler.emit(self._job, ev.StageEvent, stage=name, index=index, count=count)
        self.checkpoint()

    def progress(self, fraction: float) -> None:
        job = self._job
        job.progress = min(max(fraction, job.progress), 1.0)
        elapsed = job.run_seconds + (time.monotonic() - self._started)
        job.eta_s = self._scheduler.eta.eta(job.request.op, self._megapixels, job.progress, elapsed)
        self._scheduler.emit(
            job, ev.Progress, progress=job.progress, stage=job.stage or "", eta_s=job.eta_s
        )
        self.checkpoint()

    def preview(self, level, rgb: np.ndarray, *, step=None, total_steps=None) -> None:
        job = self._job
        height, width = rgb.shape[:2]
        self._scheduler.emit(
            job,
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


class Worker:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-worker", daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._scheduler.queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        queue = self._scheduler.queue
        while not self._stop.is_set():
            job = queue.take(timeout=1.0)
            if job is None:
                continue
            try:
                self._run(job)
            except Exception as exc:  # the worker outlives any job
                log.exception("job %s broke the worker loop", job.job_id)
                self._scheduler.finish(job, JobState.failed, error=_failure(exc))
            finally:
                queue.release(job)

    def _run(self, job: Job) -> None:
        scheduler = self._scheduler
        with scheduler.lock:
            if job.cancel_requested:
                scheduler.finish(job, JobState.cancelled)
                return
            job.state = JobState.running
            job.started_at = job.started_at or now()
            scheduler.store.set_state(job.job_id, JobState.running)
        scheduler.emit(job, ev.Started)

        request = job.request
        loader = size = None
        megapixels = 1.0
        if request.image_id is not None:
            info = scheduler.images.info(request.image_id)
            if info is None:
                scheduler.finish(job, JobState.failed, error=_image_gone(request.image_id))
                return
            megapixels = info.width * info.height / 1e6
            size = (info.width, info.height)
            loader = functools.partial(scheduler.images.load, request.image_id)
        ctx = StepContext(scheduler, job, megapixels)
        engine = scheduler.engines[request.op]
        try:
            result = engine.run(RunInput(request, None, job.seed, job.saved, loader, size), ctx)
            with scheduler.lock:  # from here on a cancel is refused (409), not half-done
                if job.cancel_requested:  # cancelled after the last step boundary
                    raise Cancelled
                job.finishing = True
        except Cancelled:
            job.saved.clear()
            scheduler.finish(job, JobState.cancelled)
            return
        except ImageGone:
            job.saved.clear()
            scheduler.finish(job, JobState.failed, error=_image_gone(request.image_id))
            return
        except Preempted:
            job.run_seconds += ctx.elapsed()
            self._requeue(job)
            return
        except Exception as exc:
            log.exception("job %s (%s) failed", job.job_id, request.op.value)
            job.saved.clear()
            scheduler.finish(job, JobState.failed, error=_failure(exc))
            return
        job.run_seconds += ctx.elapsed()
        job.saved.clear()
        info, _ = scheduler.images.put(np.ascontiguousarray(result))
        (op, bucket), expected = scheduler.eta.learn(request.op, megapixels, job.run_seconds)
        scheduler.store.save_run_time(op, bucket, expected)
        scheduler.store.save_result(scheduler.result_key(request, job.seed), info.image_id)
        if job.precompute:  # made the likely Apply ahead: only the result cache hands it out
            scheduler.finish(job, JobState.done, record=False)
            return

        def settled(saved: bool) -> None:
            # `done` is promised once the result and the job's record are on disk, so a
            # crash after it never brings the job back; a result the disk refused is
            # still done (served from memory for this run), just not durable
            scheduler.finish(job, JobState.done, result_id=info.image_id)

        scheduler.images.when_settled(info.image_id, settled)

    def _requeue(self, job: Job) -> None:
        scheduler = self._scheduler
        reason = "shutdown" if self.stopping else "preempted by an active job"
        with scheduler.lock:
            if job.cancel_requested:
                scheduler.finish(job, JobState.cancelled)
                return
            scheduler.queue.release(job)
            scheduler.store.set_state(job.job_id, JobState.queued)
            scheduler.queue.put(job)
            scheduler.emit(job, ev.Requeued, reason=reason)
            scheduler.emit(job, ev.Queued, position=scheduler.position(job) or 0)


def _image_gone(image_id: str | None) -> ErrorDetail:
    return ErrorDetail(
        code="image_not_found",
        message="the job's image is no longer stored; upload it again",
        details={"image_id": image_id},
    )


def _failure(exc: Exception) -> ErrorDetail:
    # MemoryError from numpy or OpenCV; torch's OutOfMemoryError is a RuntimeError,
    # known here by its name (this room never imports torch)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return ErrorDetail(
            code="out_of_memory",
            message="the engine ran out of memory; a smaller image or fewer jobs at once may fit",
        )
    return ErrorDetail(code="internal_error", message="the engine failed; see the sidecar log")
