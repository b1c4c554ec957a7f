"""The one worker thread that owns the GPU: it takes a job, runs its engine and
reports how the run ended, one job at a time. What a report does to the job is the
scheduler's business (`JobOwner`); the worker never changes a job's state. The event
loop never runs model work."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from ..engines import Cancelled, Engine, ImageGone, Preempted
from ..schema import ErrorDetail
from .model import Job
from .steps import Run

log = logging.getLogger(__name__)


class JobOwner(Protocol):
    """What the worker asks of whoever owns the jobs (the scheduler)."""

    @property
    def stopping(self) -> bool: ...

    def take(self, timeout: float) -> Job | None:
        """The most urgent waiting job; None after `timeout` or when stopping."""
        ...

    def begin(self, job: Job) -> Run | None:
        """Mark `job` running and say how to run it; None when it has ended already."""
        ...

    def complete(self, run: Run, result: np.ndarray) -> None: ...

    def requeue(self, run: Run) -> None:
        """The run gave way at a step boundary (`Preempted`): wait again."""
        ...

    def confirm_cancel(self, job: Job) -> None:
        """The run stopped at a step boundary because the job was cancelled."""
        ...

    def fail(self, job: Job, error: ErrorDetail) -> None: ...

    def end_run(self, run: Run) -> None:
        """The run is over, however it ended: what it read may be let go of."""

    def release(self, job: Job) -> None:
        """The worker is done with `job`, however its run ended."""
        ...


class Worker:
    def __init__(self, owner: JobOwner, warm: Iterable[Engine] = ()) -> None:
        self._owner = owner
        self._warm = tuple(warm)  # engines to warm before the first job
        self._thread = threading.Thread(target=self._loop, name="job-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the loop to end (once the owner is stopping)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        owner = self._owner
        self._warm_engines()
        while not owner.stopping:
            job = owner.take(timeout=1.0)
            if job is None:
                continue
            try:
                self._run(job)
            except Exception as exc:  # the worker outlives any job
                log.exception("job %s broke the worker loop", job.job_id)
                owner.fail(job, engine_failure(exc))
            finally:
                owner.release(job)

    def _warm_engines(self) -> None:
        """Each engine's `warm`, here so that the sidecar's stop (which joins this
        thread before it closes the engines) never closes one being warmed. A job that
        comes meanwhile waits for what it would have loaded itself."""
        started = time.perf_counter()
        for engine in self._warm:
            if self._owner.stopping:
                return
            try:
                engine.warm()
            except Exception:  # the first job loads what it needs, and says so if it cannot
                log.warning("could not warm the %s engine", engine.name, exc_info=True)
        if self._warm:
            log.info("engines warm in %.2f s", time.perf_counter() - started)

    def _run(self, job: Job) -> None:
        owner = self._owner
        run = owner.begin(job)
        if run is None:
            return
        try:
            result = run.engine.run(run.input, run.steps)
        except Cancelled:
            owner.confirm_cancel(job)
        except ImageGone:
            owner.fail(job, image_gone(job.request.image_id))
        except Preempted:
            owner.requeue(run)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.job_id, job.request.op.value)
            owner.fail(job, engine_failure(exc))
        else:
            owner.complete(run, result)
            del result
        finally:
            owner.end_run(run)


def image_gone(image_id: str | None) -> ErrorDetail:
    return ErrorDetail(
        code="image_not_found",
        message="the job's image is no longer stored; upload it again",
        details={"image_id": image_id},
    )


def engine_failure(exc: Exception) -> ErrorDetail:
    # MemoryError from numpy or OpenCV; torch's OutOfMemoryError is a RuntimeError,
    # known here by its name (this room never imports torch)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return ErrorDetail(
            code="out_of_memory",
            message="the engine ran out of memory; a smaller image or fewer jobs at once may fit",
        )
    return ErrorDetail(code="internal_error", message="the engine failed; see the sidecar log")
