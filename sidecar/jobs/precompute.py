"""Work done ahead, and work made pointless.

Precompute makes every op (or the ops asked for) ahead for the document in front, at
background priority and default params: the stages (faces, mask, plans, levels) land
in the stage cache and the result in the result cache, so the first Apply finds
everything ready. With a diffusion model loaded, the engine also encodes the VAE
latent a refine of the result starts from (a run's `ahead` flag says it is a
precompute), so the first refine skips the encoder. The panel asks for the document
in front, so precompute for every other document stops. Prefetch does the same for
the op an action makes likely next. A newer Apply of an op on a document supersedes
the older, unfinished one.

This module chooses the jobs; the scheduler queues and cancels them (`Scheduling`),
since it alone changes a job's state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from .. import errors
from ..cache import ImageStore
from ..engines import Engine
from ..schema import TERMINAL_STATES, JobRequest, Op, Priority
from .model import Job
from .results import ResultCache, derive_seed


class Scheduling(Protocol):
    """What precompute and supersede ask of the scheduler."""

    lock: threading.RLock
    images: ImageStore
    engines: Mapping[Op, Engine]
    results: ResultCache
    jobs: OrderedDict[str, Job]

    def queue_precompute(self, request: JobRequest, seed: int) -> Job: ...

    def withdraw(self, job: Job, reason: str | None = None) -> None: ...


class Precompute:
    def __init__(self, scheduling: Scheduling) -> None:
        self._scheduling = scheduling

    def start(
        self, image_id: str, document_id: str, layer_stack_hash: str | None, ops: list[Op] | None
    ) -> tuple[list[Job], int]:
        """Queue `ops` (every loaded op but `generate`, by default) for the document's
        image, unless the result cache has them; stop every other document's
        precompute. Returns the jobs queued and how many were stopped."""
        scheduling = self._scheduling
        if not scheduling.images.has(image_id):
            raise errors.ImageNotFound("upload the image first", details={"image_id": image_id})
        loaded = scheduling.engines
        jobs = []
        with scheduling.lock:
            stopped = self.stop(other_than=document_id)
            for op in dict.fromkeys(ops or loaded):
                if op is Op.generate or op not in loaded:
                    continue
                request = JobRequest(
                    op=op,
                    image_id=image_id,
                    document_id=document_id,
                    layer_stack_hash=layer_stack_hash,
                    priority=Priority.background,
                )
                seed = derive_seed(request)  # the seed the same Apply will get
                if scheduling.results.find(request, seed) is not None:
                    continue  # made before
                jobs.append(scheduling.queue_precompute(request, seed))
        return jobs, stopped

    def stop(self, document_id: str | None = None, *, other_than: str | None = None) -> int:
        """Cancel the unfinished precompute of one document (of every document when
        None), or of all documents but `other_than`. Returns how many."""
        scheduling = self._scheduling
        with scheduling.lock:
            stale = [
                job
                for job in scheduling.jobs.values()
                if job.precompute
                and job.state not in TERMINAL_STATES
                and document_id in (None, job.request.document_id)
                and (other_than is None or job.request.document_id != other_than)
            ]
            for job in stale:
                scheduling.withdraw(job, "precompute stopped")
        return len(stale)

    def prefetch(self, document_id: str, op: Op) -> list[Job]:
        """Precompute `op` on the document's image: the image and layer stack of the
        newest job of that document that had one; nothing if none is known or stored."""
        scheduling = self._scheduling
        with scheduling.lock:
            for job in reversed(scheduling.jobs.values()):
                request = job.request
                if request.document_id == document_id and request.image_id is not None:
                    if not scheduling.images.has(request.image_id):
                        return []
                    image_id, stack = request.image_id, request.layer_stack_hash
                    jobs, _ = self.start(image_id, document_id, stack, [op])
                    return jobs
        return []

    def supersede(self, newer: Job) -> None:
        """(Under the lock.) Cancel the unfinished Applies of the same op on the same
        document as `newer`: a waiting one at once, a running one at its next step
        boundary. Precompute is never superseded: its stages serve the newer Apply."""
        document = newer.request.document_id
        if document is None:
            return
        older = [
            job
            for job in self._scheduling.jobs.values()
            if job.state not in TERMINAL_STATES
            and not job.precompute
            and job.request.document_id == document
            and job.request.op is newer.request.op
        ]
        for job in older:
            self._scheduling.withdraw(job, f"superseded by {newer.job_id}")
