"""The scheduler: jobs, their queue, their events and their record on disk.

Methods are called from the event loop (submit, reorder, cancel, read) and from the
one worker thread (transitions while running); one lock orders the transitions, so a
job reaches exactly one terminal state whatever races between cancel, pre-emption
and completion.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import OrderedDict

import blake3

from .. import errors
from ..cache import ImageStore
from ..engines import Engine, close_engine, validate_request
from ..schema import TERMINAL_STATES, ErrorDetail, JobRequest, JobState, Op, Priority
from ..schema import events as ev
from .eta import EtaModel
from .events import EventBus
from .model import Job, new_job_id, now
from .queue import JobQueue
from .store import JobStore, StoredJob
from .worker import Worker

log = logging.getLogger(__name__)

JOBS_REMEMBERED = 2_000


def derive_seed(request: JobRequest) -> int:
    """The seed when none is given: from the image's content hash and the params, so
    the same request gives the same pixels."""
    material = json.dumps(
        [request.image_id, request.op.value, request.params, request.prompt], sort_keys=True
    ).encode()
    return int.from_bytes(blake3.blake3(material).digest(8), "big") & (2**63 - 1)


class Scheduler:
    def __init__(
        self,
        *,
        images: ImageStore,
        engines: dict[Op, Engine],
        store: JobStore,
        bus: EventBus,
        eta: EtaModel | None = None,
    ) -> None:
        self.images = images
        self.engines = engines
        self.store = store
        self.bus = bus
        self.eta = eta or EtaModel(store.run_times())
        self.queue = JobQueue()
        self.lock = threading.RLock()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._order = itertools.count(store.max_order() + 1)
        self._worker = Worker(self)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Bring back the work that was queued or running when the sidecar stopped, and
        the newest finished jobs (a client may not have fetched a result yet)."""
        for stored in self.store.finished(JOBS_REMEMBERED):
            job = self._restored(stored)
            job.state = stored.state
            job.result_id, job.error = stored.result_id, stored.error
            job.progress = 1.0 if stored.state is JobState.done else 0.0
            self._emit_end(job)  # its stream replays the end
        unfinished = self.store.unfinished()
        for stored in unfinished:
            job = self._restored(stored)
            self.store.set_state(job.job_id, JobState.queued)
            self.queue.put(job)
        if unfinished:
            log.info("resuming %d queued job(s)", len(unfinished))
        self._worker.start()

    def _restored(self, stored: StoredJob) -> Job:
        job = Job(
            stored.job_id,
            stored.request,
            stored.priority,
            stored.order,
            stored.seed,
            created_at=stored.created_at,
        )
        # seq must keep increasing across the restart (clients drop what they have
        # seen); the counter was in memory, so go on from the clock in ms, which is
        # past any count a job reaches in one run
        job.last_seq = time.time_ns() // 1_000_000
        self.jobs[job.job_id] = job
        return job

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job's next step boundary; it stays queued on disk."""
        self._worker.stop(timeout)
        for engine in set(self.engines.values()):
            close_engine(engine)
        self.images.flush()  # results still being written record their jobs as done
        self.store.prune()
        self.store.close()

    @property
    def stopping(self) -> bool:
        return self._worker.stopping

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
        validate_request(self.engines[request.op], request)
        seed = request.seed if request.seed is not None else derive_seed(request)
        cached = self.cached_result(request, seed)
        with self.lock:
            job = Job(new_job_id(), request, request.priority, next(self._order), seed)
            self._supersede(job)
            self.store.add(job.job_id, job.order, request, job.priority, seed, job.created_at)
            self.jobs[job.job_id] = job
            self._forget_old()
            if cached is not None:  # answered from the cache: never queued
                job.cached = True
                self.finish(job, JobState.done, result_id=cached)
                return job
            self.queue.put(job)
            self.emit(job, ev.Queued, position=self.position(job) or 0)
        return job

    def run_again(self, request: JobRequest, priority: Priority, seed: int) -> Job:
        """Queue `request` with `seed` as a job of the sidecar's own (see remake.py):
        not recorded on disk, and with no document, so it supersedes no Apply and no
        Apply supersedes it."""
        with self.lock:
            request = request.model_copy(update={"document_id": None})
            job = Job(new_job_id(), request, priority, next(self._order), seed)
            self.jobs[job.job_id] = job
            self._forget_old()
            self.queue.put(job)
            self.emit(job, ev.Queued, position=self.position(job) or 0)
        return job

    def precompute(
        self, image_id: str, document_id: str, layer_stack_hash: str | None, ops: list[Op] | None
    ) -> tuple[list[Job], int]:
        """Make `ops` (every op on an image, by default) ahead for this document's image
        at background priority, at their default params: the stages (faces, mask,
        plans, levels) land in the stage cache and the result in the result cache, so
        the first Apply finds everything ready. The panel calls this for the document
        in front, so precompute for every other document stops."""
        if not self.images.has(image_id):
            raise errors.ImageNotFound("upload the image first", details={"image_id": image_id})
        wanted = ops or list(self.engines)
        jobs = []
        with self.lock:
            stopped = self.cancel_precompute(other_than=document_id)
            for op in dict.fromkeys(wanted):
                if op is Op.generate or op not in self.engines:
                    continue
                request = JobRequest(
                    op=op,
                    image_id=image_id,
                    document_id=document_id,
                    layer_stack_hash=layer_stack_hash,
                    priority=Priority.background,
                )
                seed = derive_seed(request)  # the seed the same Apply will get
                if self.cached_result(request, seed) is not None:
                    continue  # made before
                job = Job(new_job_id(), request, Priority.background, next(self._order), seed)
                job.precompute = True
                self.jobs[job.job_id] = job
                self._forget_old()
                self.queue.put(job)
                self.emit(job, ev.Queued, position=self.position(job) or 0)
                jobs.append(job)
        return jobs, stopped

    def cancel_precompute(
        self, document_id: str | None = None, *, other_than: str | None = None
    ) -> int:
        """Stop unfinished precompute work of one document, or of all but one."""
        count = 0
        with self.lock:
            for job in list(self.jobs.values()):
                if not job.precompute or job.state in TERMINAL_STATES:
                    continue
                doc = job.request.document_id
                if (document_id is not None and doc != document_id) or (
                    other_than is not None and doc == other_than
                ):
                    continue
                job.cancel_requested = True
                job.cancel_reason = "precompute stopped"
                if self.queue.remove(job.job_id) is not None:
                    self.finish(job, JobState.cancelled)
                count += 1
        return count

    def prefetch(self, document_id: str, op: Op) -> list[Job]:
        """After an action, ready the likely next op's stages for the document's image
        (the newest image a job of that document used); nothing if none is known."""
        with self.lock:
            for job in reversed(self.jobs.values()):
                request = job.request
                if request.document_id == document_id and request.image_id is not None:
                    if not self.images.has(request.image_id):
                        return []
                    jobs, _ = self.precompute(
                        request.image_id, document_id, request.layer_stack_hash, [op]
                    )
                    return jobs
        return []

    def cached_result(self, request: JobRequest, seed: int) -> str | None:
        """The stored result of an earlier identical request; None if there is none or
        its image has gone from the store (then it is made again)."""
        result_id = self.store.cached_result(self.result_key(request, seed))
        return result_id if result_id is not None and self.images.has(result_id) else None

    def result_key(self, request: JobRequest, seed: int) -> str:
        """What a result depends on: the engine and its version (model included), the
        op, the full-pixel image id, the layer stack, params, intensity, prompt, seed."""
        engine = self.engines[request.op]
        material = json.dumps(
            [
                "result/1",
                engine.name,
                getattr(engine, "version", ""),
                request.op.value,
                request.image_id,
                request.layer_stack_hash,
                request.params,
                request.intensity,
                request.prompt,
                seed,
            ],
            sort_keys=True,
        ).encode()
        return blake3.blake3(material).hexdigest()

    def _supersede(self, newer: Job) -> None:
        """A newer Apply of the same op on the same document replaces the older one:
        a waiting one is cancelled at once, a running one at its next level boundary."""
        document = newer.request.document_id
        if document is None:
            return
        for job in list(self.jobs.values()):
            if (
                job.state not in TERMINAL_STATES
                and not job.precompute  # its stages serve the newer Apply
                and job.request.document_id == document
                and job.request.op is newer.request.op
            ):
                job.cancel_requested = True
                job.cancel_reason = f"superseded by {newer.job_id}"
                if self.queue.remove(job.job_id) is not None:
                    self.finish(job, JobState.cancelled)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise errors.JobNotFound("no such job", details={"job_id": job_id[:64]})
        return job

    def reprioritise(self, job_id: str, priority: Priority) -> Job:
        with self.lock:
            job = self.get(job_id)
            if job.state in TERMINAL_STATES:
                raise errors.Conflict(
                    f"the job is already {job.state.value}", details={"state": job.state.value}
                )
            self.queue.reprioritise(job, priority)
            self.store.set_priority(job.job_id, priority)
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job ends at once; a running one at its next step boundary."""
        with self.lock:
            job = self.get(job_id)
            if job.state is JobState.cancelled:
                return job  # cancelling twice is not an error
            if job.state in TERMINAL_STATES:
                raise errors.Conflict(
                    f"the job is already {job.state.value}", details={"state": job.state.value}
                )
            if job.finishing:  # its result is being stored: a 202 now would be a lie
                raise errors.Conflict(
                    "the job has finished its work and is storing its result",
                    details={"state": job.state.value},
                )
            job.cancel_requested = True
            if self.queue.remove(job.job_id) is not None:
                self.finish(job, JobState.cancelled)
        return job

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

    # -- transitions (loop or worker thread) ------------------------------------------
    def emit(self, job: Job, kind: type, jpeg: bytes | None = None, **fields) -> None:
        with self.lock:
            seq = job.next_seq()
            if kind is ev.PreviewHeader:
                fields["url"] = f"/v1/jobs/{job.job_id}/previews/{seq}"
            event = kind(job_id=job.job_id, seq=seq, ts=now(), **fields)
        self.bus.publish(event, jpeg)

    def finish(
        self,
        job: Job,
        state: JobState,
        *,
        error: ErrorDetail | None = None,
        result_id: str | None = None,
        record: bool = True,
    ) -> None:
        """End a job (once). `record=False` leaves its record on disk to the caller:
        a result still being written records the job as done once it is on disk, so a
        crash in between runs the job again rather than losing its result."""
        with self.lock:
            if job.state in TERMINAL_STATES:
                return
            job.state = state
            job.finished_at = now()
            job.error = error
            job.result_id = result_id
            job.eta_s = 0.0 if state is JobState.done else None
            if record:
                self.store.set_state(job.job_id, state, result_id, error)
            if state is JobState.done:
                job.progress = 1.0
            self._emit_end(job)

    def _emit_end(self, job: Job) -> None:
        if job.state is JobState.done:
            result_url = f"/v1/jobs/{job.job_id}/result"
            self.emit(job, ev.Done, cached=job.cached, result_url=result_url)
        elif job.state is JobState.failed:
            error = job.error or ErrorDetail(code="internal_error", message="the job failed")
            self.emit(job, ev.Failed, error=error)
        else:
            self.emit(job, ev.Cancelled, reason=job.cancel_reason)

    def _forget_old(self) -> None:
        while len(self.jobs) > JOBS_REMEMBERED:
            oldest = next(iter(self.jobs.values()))
            if oldest.state not in TERMINAL_STATES:
                break
            self.jobs.popitem(last=False)
