"""The job store's rows of the scheduler's jobs (see scheduler.py, which calls this
under its lock).

A job is on disk before its 202, and a job on disk never comes back after a crash
without its pixels. A job whose image was uploaded a moment ago, and is still being
written behind, need not wait for that write to start: it runs at once and goes on
disk when the image has (the image store's writer calls back in order, so before any
result of the job is written). Until then its changes of state stay in memory only,
and when it goes on disk it is written as it stands; `Job.recorded` tells the 202
when that is.
"""

from __future__ import annotations

import logging
import threading

from ..cache import ImageStore
from ..schema import ErrorDetail, JobState, Priority
from .model import Job
from .store import JobStore

log = logging.getLogger(__name__)


class Records:
    def __init__(self, store: JobStore, images: ImageStore, lock: threading.RLock) -> None:
        self._store = store
        self._images = images
        self._lock = lock

    def add(self, job: Job) -> None:
        """A new job: on disk now, or once its image is."""
        image = job.request.image_id
        if image is not None and self._images.writing(image):
            job.recorded.clear()
            self._images.when_settled(image, lambda _saved: self._late(job))
        else:
            self._write(job)

    def state(
        self,
        job: Job,
        state: JobState,
        result_id: str | None = None,
        error: ErrorDetail | None = None,
    ) -> None:
        if job.recorded.is_set():
            self._store.set_state(job.job_id, state, result_id, error)

    def priority(self, job: Job, priority: Priority) -> None:
        if job.recorded.is_set():
            self._store.set_priority(job.job_id, priority)

    def _write(self, job: Job) -> None:
        self._store.add(job.job_id, job.order, job.request, job.priority, job.seed, job.created_at)

    def _late(self, job: Job) -> None:
        """On the image store's writer: the job as it stands now (a job that ran, or
        even ended, meanwhile is written so). `recorded` is set under the lock, so no
        change of state can fall between this write and the ones `state` makes."""
        with self._lock:
            try:
                self._write(job)
                if job.state is not JobState.queued:
                    self._store.set_state(job.job_id, job.state, job.result_id, job.error)
            except Exception:
                log.exception("could not record job %s", job.job_id)
            finally:
                job.recorded.set()
