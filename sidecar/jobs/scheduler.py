"""The scheduler: the one owner of a job's life, its queue, its events and its record.

Every change of a job's state is made here, each transition in one method:

    submit, run_again, queue_precompute  → queued     (`_enqueue`)
    begin                       queued   → running    (the worker took it)
    requeue                     running  → queued     (it gave way at a step boundary)
    complete                    running  → done       (once its result is on disk and
                                                       its output file, if any, written)
    fail                                 → failed
    cancel, withdraw                     → cancelled  (a waiting job at once; a running
    confirm_cancel                                     one at its next step boundary)

and every end goes through `_end`. Methods are called from the event loop (submit,
reorder, cancel, read) and from the one worker thread (begin to complete); one lock
orders the transitions, so a job reaches exactly one terminal state whatever races
between cancel, pre-emption and completion.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .. import errors
from ..cache import ImageStore
from ..cache.stages import StageScopes
from ..engines import Engine
from ..schema import TERMINAL_STATES, ErrorDetail, JobRequest, JobState, Op, Priority
from ..schema import events as ev
from .eta import EtaModel
from .events import EventBus
from .model import Job, new_job_id, now, restored
from .outputs import OutputWriter
from .precompute import Precompute
from .queue import JobQueue
from .records import Records
from .results import ResultCache, derive_seed
from .steps import Run, prepare_run
from .store import JobStore
from .worker import Worker, image_gone

log = logging.getLogger(__name__)

JOBS_REMEMBERED = 2_000


class Scheduler:
    def __init__(
        self,
        *,
        images: ImageStore,
        engines: dict[Op, Engine],
        store: JobStore,
        bus: EventBus,
        eta: EtaModel | None = None,
        warm: bool = False,  # the worker warms the engines before its first job
    ) -> None:
        self.images = images
        self.engines = engines
        self.store = store
        self.bus = bus
        self.eta = eta or EtaModel(store.run_times())
        self.results = ResultCache(images, store, engines)
        self.queue = JobQueue()
        self.lock = threading.RLock()
        self.records = Records(store, images, self.lock)  # its rows of the jobs
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._order = itertools.count(store.max_order() + 1)
        self._stopping = threading.Event()
        self._precompute = Precompute(self)
        self._worker = Worker(self, warm=set(engines.values()) if warm else ())
        self.outputs = OutputWriter(images)  # jobs' output files, off the worker thread
        self.stage_scopes = StageScopes()  # what batch jobs leave in memory: nothing

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Bring back the work that was queued or running when the sidecar stopped, and
        the newest finished jobs (a client may not have fetched a result yet)."""
        for stored in self.store.finished(JOBS_REMEMBERED):
            job = self.jobs[stored.job_id] = restored(stored)
            self._emit_end(job)  # its stream replays the end
        unfinished = self.store.unfinished()
        for stored in unfinished:  # queued again, silently: nobody follows it yet
            job = self.jobs[stored.job_id] = restored(stored)
            self.store.set_state(job.job_id, JobState.queued)
            self.queue.put(job)
        if unfinished:
            log.info("resuming %d queued job(s)", len(unfinished))
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job's next step boundary; it stays queued on disk."""
        self._stopping.set()
        self.queue.close()
        self._worker.join(timeout)
        for engine in set(self.engines.values()):
            engine.close()
        self.outputs.close()  # the output files being written end their jobs
        self.images.flush()  # results still being written record their jobs as done
        self.store.prune()
        self.store.close()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- requests from clients -------------------------------------------------------
    def submit(self, request: JobRequest) -> Job:
        if request.op not in self.engines:
            raise errors.EngineUnavailable(
                f"no engine for {request.op.value} is loaded",
                details={"op": request.op.value, "loaded": sorted(o.value for o in self.engines)},
            )
        if request.image_id is not None and not self.images.has(request.image_id):
            raise errors.ImageNotFound(
                "upload the image first", details={"image_id": request.image_id}
            )
        self.engines[request.op].validate(request)
        seed = request.seed if request.seed is not None else derive_seed(request)
        cached = self.results.find(request, seed)
        with self.lock:
            job = Job(new_job_id(), request, request.priority, next(self._order), seed)
            self._precompute.supersede(job)
            self.records.add(job)  # now, or once an image still being written is on disk
            self._remember(job)
            if cached is not None:  # answered from the cache: never queued
                job.cached = True
                if request.output is None:
                    self._end(job, JobState.done, result_id=cached)
                else:  # done once its output is written from the cached result
                    job.state, job.finishing = JobState.running, True
                    self._done_when_stored(job, cached)
                return job
            self._enqueue(job)
        return job

    def run_again(self, request: JobRequest, priority: Priority, seed: int) -> Job:
        """Queue `request` with `seed` as a job of the sidecar's own (see remake.py):
        not recorded on disk, and with no document, so it supersedes no Apply and no
        Apply supersedes it."""
        with self.lock:
            update = {"document_id": None, "output": None}  # nor writes the output again
            return self._queue_new(request.model_copy(update=update), priority, seed)

    def queue_precompute(self, request: JobRequest, seed: int) -> Job:
        """Queue a precompute job (see precompute.py): background work, never on disk."""
        with self.lock:
            return self._queue_new(request, Priority.background, seed, precompute=True)

    def precompute(
        self, image_id: str, document_id: str, layer_stack_hash: str | None, ops: list[Op] | None
    ) -> tuple[list[Job], int]:
        """Make `ops` ahead for the document in front, and stop precompute for every
        other document: see precompute.py."""
        return self._precompute.start(image_id, document_id, layer_stack_hash, ops)

    def cancel_precompute(
        self, document_id: str | None = None, *, other_than: str | None = None
    ) -> int:
        """Stop unfinished precompute work of one document, or of all but one."""
        return self._precompute.stop(document_id, other_than=other_than)

    def prefetch(self, document_id: str, op: Op) -> list[Job]:
        """After an action, make the likely next op ahead: see precompute.py."""
        return self._precompute.prefetch(document_id, op)

    def result_key(self, request: JobRequest, seed: int) -> str:
        return self.results.key(request, seed)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise errors.JobNotFound("no such job", details={"job_id": job_id[:64]})
        return job

    def _unfinished(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in TERMINAL_STATES:
            raise errors.Conflict(
                f"the job is already {job.state.value}", details={"state": job.state.value}
            )
        return job

    def reprioritise(self, job_id: str, priority: Priority) -> Job:
        with self.lock:
            job = self._unfinished(job_id)
            self.queue.reprioritise(job, priority)
            self.records.priority(job, priority)
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job ends at once; a running one at its next step boundary."""
        with self.lock:
            job = self.get(job_id)
            if job.state is JobState.cancelled:
                return job  # cancelling twice is not an error
            self._unfinished(job_id)
            if job.finishing:  # its result is being stored: a 202 now would be a lie
                raise errors.Conflict(
                    "the job has finished its work and is storing its result",
                    details={"state": job.state.value},
                )
            self.withdraw(job)
        return job

    def repoint_result(self, job: Job, result_id: str) -> None:
        """`job` (done) has `result_id` for its result now, in memory and on disk: its
        result was made again (remake.py); the job stays done."""
        with self.lock:
            if job.result_id != result_id:
                job.result_id = result_id
                self.records.state(job, JobState.done, result_id)

    def listing(self) -> list[tuple[Job, int | None]]:
        """Every known job in queue order: running, then waiting, then the rest, newest first."""
        positions = self.queue.positions()
        with self.lock:
            jobs = list(self.jobs.values())
        running = [j for j in jobs if j.state is JobState.running]
        waiting = sorted(
            (j for j in jobs if j.job_id in positions), key=lambda j: positions[j.job_id]
        )
        rest = [j for j in reversed(jobs) if j.state in TERMINAL_STATES]
        return [(j, positions.get(j.job_id)) for j in running + waiting + rest]

    def position(self, job: Job) -> int | None:
        return self.queue.positions().get(job.job_id)

    def counts(self) -> tuple[int, int]:
        return self.queue.counts()

    # -- the worker's side (worker.JobOwner) -------------------------------------------
    def take(self, timeout: float) -> Job | None:
        return self.queue.take(timeout)

    def begin(self, job: Job) -> Run | None:
        with self.lock:
            if job.cancel_requested:
                self._end(job, JobState.cancelled)
                return None
            job.state = JobState.running
            job.started_at = job.started_at or now()
            self.records.state(job, JobState.running)
        if not job.request.preview.progressive and not job.precompute:
            # shows nothing as it runs (a batch's, the queue's): keeps no stages in memory
            self.stage_scopes.begin(job.job_id)
        self.emit(job, ev.Started)
        run = prepare_run(
            job,
            self.engines[job.request.op],
            self.images,
            emit=self.emit,
            must_yield=lambda: self.stopping or self.queue.should_yield(job),
            eta=self.eta,
            watching=self.bus.watching,
        )
        if run is None:
            self.fail(job, image_gone(job.request.image_id))
        return run

    def complete(self, run: Run, result: np.ndarray) -> None:
        """Keep the result; the job is done once the result is on disk."""
        job = run.job
        with self.lock:  # from here on a cancel is refused (409), not half-done
            if job.cancel_requested:  # cancelled after the last step boundary
                self._end(job, JobState.cancelled)
                return
            job.finishing = True
        job.run_seconds += run.steps.elapsed()
        job.resume = None
        result_id = self.results.keep(job.request, job.seed, result, run.rows.take())
        learnt, expected = self.eta.learn(job.request.op, run.steps.megapixels, job.run_seconds)
        self.store.save_run_time(*learnt, expected)
        self._done_when_stored(job, result_id, result)

    def _done_when_stored(self, job: Job, result_id: str, pixels: np.ndarray | None = None):
        """`done` is promised once the result and the job's record are on disk, so a crash
        after it never brings the job back (a result the disk refused is still done,
        served from memory for this run, just not durable); for a job with an output
        file, once that is written too, from `pixels` (None: the stored result), off the
        worker thread (outputs.py): `failed` with write_failed when it cannot be. A
        precompute job too (so the Apply after it is sent from the file, not copied out
        of memory mid-write), unrecorded: only the result cache hands its result out."""
        kept = not job.precompute

        def end(error: ErrorDetail | None = None) -> None:
            state, result = (JobState.failed, None) if error else (JobState.done, result_id)
            self._end(job, state, error=error, result_id=result if kept else None, record=kept)

        if job.request.output is None:
            self.results.when_on_disk(result_id, end)
        else:
            self.outputs.when_written(job.request, result_id, pixels, end)

    def requeue(self, run: Run) -> None:
        job = run.job
        job.run_seconds += run.steps.elapsed()
        job.resume = run.input.resume  # what the engine finished, for its next run
        reason = "shutdown" if self.stopping else "preempted by an active job"
        with self.lock:
            if job.cancel_requested:
                self._end(job, JobState.cancelled)
                return
            self.queue.release(job)
            self.records.state(job, JobState.queued)
            self._enqueue(job, requeued_because=reason)

    def confirm_cancel(self, job: Job) -> None:
        self._end(job, JobState.cancelled)

    def fail(self, job: Job, error: ErrorDetail) -> None:
        self._end(job, JobState.failed, error=error)

    def end_run(self, run: Run) -> None:
        run.give_back_input(self.images.buffers)

    def release(self, job: Job) -> None:
        self.stage_scopes.end(job.job_id)
        self.queue.release(job)

    # -- transitions and events -------------------------------------------------------
    def emit(self, job: Job, kind: type, jpeg: bytes | None = None, **fields) -> None:
        with self.lock:
            seq = job.next_seq()
            if kind is ev.PreviewHeader:
                fields["url"] = f"/v1/jobs/{job.job_id}/previews/{seq}"
            event = kind(job_id=job.job_id, seq=seq, ts=now(), **fields)
        self.bus.publish(event, jpeg)

    def _queue_new(self, request: JobRequest, priority: Priority, seed: int, **flags: Any) -> Job:
        """(Under the lock.) A new job of the sidecar's own, queued; never on disk."""
        job = Job(new_job_id(), request, priority, next(self._order), seed, **flags)
        self._remember(job)
        self._enqueue(job)
        return job

    def _remember(self, job: Job) -> None:
        self.jobs[job.job_id] = job
        while len(self.jobs) > JOBS_REMEMBERED:
            oldest = next(iter(self.jobs.values()))
            if oldest.state not in TERMINAL_STATES:
                break
            self.jobs.popitem(last=False)

    def _enqueue(self, job: Job, *, requeued_because: str | None = None) -> None:
        """(Under the lock.) `job` waits in the queue; its watchers hear so."""
        job.state = JobState.queued
        self.queue.put(job)
        if requeued_because is not None:
            self.emit(job, ev.Requeued, reason=requeued_because)
        self.emit(job, ev.Queued, position=self.position(job) or 0)

    def withdraw(self, job: Job, reason: str | None = None) -> None:
        """Cancel `job`: a waiting one ends now, a running one at its next step boundary."""
        job.cancel_requested = True
        if reason is not None:  # the sidecar's own cancel says why
            job.cancel_reason = reason
        if self.queue.remove(job.job_id) is not None:
            self._end(job, JobState.cancelled)

    def _end(
        self,
        job: Job,
        state: JobState,
        *,
        error: ErrorDetail | None = None,
        result_id: str | None = None,
        record: bool = True,
    ) -> None:
        """End a job (once). `record=False` leaves the job store alone (a precompute
        job has no record there: only the result cache hands out its result)."""
        with self.lock:
            if job.state in TERMINAL_STATES:
                return
            job.state = state
            job.finished_at = now()
            job.error = error
            job.result_id = result_id
            job.eta_s = 0.0 if state is JobState.done else None
            job.resume = None
            if record:
                self.records.state(job, state, result_id, error)
            if state is JobState.done:
                job.progress = 1.0
            self._emit_end(job)
            image = job.request.image_id
            others = (j for j in self.jobs.values() if j.state not in TERMINAL_STATES)
            if not any(j.request.image_id == image for j in others):
                self.images.release(image)  # its file-backed pixels leave memory
                self.stage_scopes.drop(image)  # and what was worked out ahead for it

    def _emit_end(self, job: Job) -> None:
        kind, fields = job.end_event()
        self.emit(job, kind, **fields)
