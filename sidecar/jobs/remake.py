"""A done job's result, made again when the image store's limit has removed it.

The result route asks `remake`: the job's request (op, params, intensity, prompt,
layer stack, seed) runs again as a new job of the sidecar's own, and the done job is
then pointed at what it made, on disk too. The done job itself never leaves `done`
(clients rely on that): it is not queued again and emits no event. The engines are
deterministic, so the pixels are the same, and so is the (content-addressed) id. The
result cache stays right: the scheduler records the new result under the request's key
as it does for any job, and a result an identical Apply made since is taken as it is.

Requests for the same result while it is being made share one remake (the `Remakes`
of the app keeps those in flight); a requester that goes away leaves it to the others,
and it still lands in the result cache.
"""

from __future__ import annotations

import asyncio
from functools import partial

from .. import errors
from ..schema import JobState
from .events import TERMINAL
from .model import Job
from .scheduler import Scheduler


class Remakes:
    """The remakes of one scheduler's results: result key → the remake in flight (made
    and read on the event loop)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._flights: dict[str, asyncio.Future[str]] = {}

    async def remake(self, job: Job) -> str:
        """Make the result of `job` (done, its result gone) again, point `job` at it
        and return its id. `ResultGone` when the job's image is gone too,
        `ResultRemakeFailed` when the new job fails or is cancelled,
        `EngineUnavailable` when the op's engine is no longer loaded."""
        scheduler, request = self.scheduler, job.request
        if request.op not in scheduler.engines:
            raise errors.EngineUnavailable(
                f"no engine for {request.op.value} is loaded to make the result again",
                details={"op": request.op.value},
            )
        key = scheduler.result_key(request, job.seed)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = asyncio.ensure_future(_make(scheduler, job))
            flight.add_done_callback(partial(_landed, self._flights, key))
        await asyncio.wait({flight})  # never cancels the flight: others may wait on it
        if flight.cancelled():  # the loop is going away
            raise errors.ResultRemakeFailed(
                "making the result again was stopped; ask again", details={"reason": "stopped"}
            )
        result_id = flight.result()  # or its error
        scheduler.repoint_result(job, result_id)
        return result_id


async def _make(scheduler: Scheduler, job: Job) -> str:
    request = job.request
    cached = scheduler.results.find(request, job.seed)
    if cached is not None:  # an identical Apply made it again already
        return cached
    if request.image_id is not None and not scheduler.images.has(request.image_id):
        raise _gone(request.image_id)
    again = scheduler.run_again(request, job.priority, job.seed)
    # Subscribed before any of its events is dispatched: they all go through the
    # loop's callback queue, and nothing here yields in between.
    events = scheduler.bus.subscribe({again.job_id})
    try:
        while (item := await events.get()) is not None:
            if isinstance(item.event, TERMINAL):
                break
        else:  # the bus closed: the sidecar is shutting down
            raise errors.ResultRemakeFailed(
                "the sidecar is shutting down; ask again once it is back",
                details={"reason": "shutdown", "job_id": again.job_id},
            )
    finally:
        scheduler.bus.unsubscribe(events)
    # the state is set before its event is published, under the scheduler's lock
    if again.state is JobState.done and again.result_id is not None:
        return again.result_id
    if again.state is JobState.failed:
        error = again.error
        if error is not None and error.code == "image_not_found":  # evicted meanwhile
            raise _gone(request.image_id)
        code = error.code if error is not None else "internal_error"
        message = error.message if error is not None else "the job failed"
        raise errors.ResultRemakeFailed(
            f"making the result again failed: {message}",
            details={"reason": "failed", "error": code, "job_id": again.job_id},
        )
    why = f" ({again.cancel_reason})" if again.cancel_reason else ""
    raise errors.ResultRemakeFailed(
        f"making the result again was cancelled{why}; ask again",
        details={"reason": "cancelled", "job_id": again.job_id},
    )


def _landed(flights: dict[str, asyncio.Future[str]], key: str, flight: asyncio.Future) -> None:
    if flights.get(key) is flight:
        del flights[key]
    if not flight.cancelled():
        flight.exception()  # retrieved: a remake nobody waits for any more logs nothing


def _gone(image_id: str | None) -> errors.ResultGone:
    return errors.ResultGone(
        "the result and the image it was made from are no longer stored; "
        "upload the image and Apply again",
        details={"image_id": image_id},
    )
