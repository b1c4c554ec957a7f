"""Job routes: submit, list, read, reorder, cancel, result. Handlers validate and hand
off to the scheduler; none of them runs model work."""

from __future__ import annotations

import asyncio
from functools import partial

import numpy as np
from aiohttp import web

from .. import errors
from ..cache.images import OpenImage
from ..imaging.blend import result_at_intensity
from ..imaging.encode import encode_file, fit_within
from ..jobs import Job, Scheduler
from ..schema import JobCreated, JobList, JobPatch, JobRequest, JobState, ResultQuery
from .keys import IMAGES, IMAGING_POOL, REMAKES, SCHEDULER
from .responses import file_part_response, model_response
from .validation import json_body, query

routes = web.RouteTableDef()
RAW_MEDIA_TYPE = "application/octet-stream"


def _job(request: web.Request) -> tuple[Scheduler, Job]:
    scheduler = request.app[SCHEDULER]
    return scheduler, scheduler.get(request.match_info["job_id"])


@routes.post("/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    body = await json_body(request, JobRequest)
    scheduler = request.app[SCHEDULER]
    job = scheduler.submit(body)
    if not job.recorded.is_set():
        # Its image is still on its way to the disk: the job runs already, and goes on
        # disk once the image has (a crash in between never brings a job back without
        # its pixels). The 202 says it is on disk, so it waits for that.
        await asyncio.get_running_loop().run_in_executor(None, job.recorded.wait)
    created = JobCreated(
        job_id=job.job_id, state=job.state, position=scheduler.position(job), cached=job.cached
    )
    return model_response(created, status=202)


@routes.get("/v1/jobs")
async def listing(request: web.Request) -> web.Response:
    jobs = request.app[SCHEDULER].listing()
    return model_response(JobList(jobs=[job.status(position) for job, position in jobs]))


@routes.get("/v1/jobs/{job_id}")
async def status(request: web.Request) -> web.Response:
    scheduler, job = _job(request)
    return model_response(job.status(scheduler.position(job)))


@routes.patch("/v1/jobs/{job_id}")
async def reprioritise(request: web.Request) -> web.Response:
    body = await json_body(request, JobPatch)
    scheduler = request.app[SCHEDULER]
    job = scheduler.reprioritise(request.match_info["job_id"], body.priority)
    return model_response(job.status(scheduler.position(job)))


@routes.delete("/v1/jobs/{job_id}")
async def cancel(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    job = scheduler.cancel(request.match_info["job_id"])
    # 200: cancelled now; 202: a running job will stop at its next step boundary
    return model_response(job.status(None), status=200 if job.state is JobState.cancelled else 202)


@routes.get("/v1/jobs/{job_id}/result")
async def result(request: web.Request) -> web.StreamResponse:
    scheduler, job = _job(request)
    options = query(request.query, ResultQuery)
    if job.precompute:
        raise errors.Conflict("a precompute job readies stages and makes no result")
    if job.state is not JobState.done or job.result_id is None:
        raise errors.Conflict(
            f"the job is {job.state.value}, not done", details={"state": job.state.value}
        )
    images = request.app[IMAGES]
    loop = asyncio.get_running_loop()
    render = partial(loop.run_in_executor, request.app[IMAGING_POOL], _render)
    # The raw result as it was made is the stored file's pixel bytes: sent from the
    # file by the kernel, never loaded (a 24 MP 16-bit result is 144 MB).
    as_stored = (
        options.format == "raw"
        and options.max_side is None
        and (options.intensity is None or options.intensity >= 1.0)
    )
    pixels = None
    for remade in (False, True):
        if remade:  # the store's limit removed it (or it was damaged): made again
            await request.app[REMAKES].remake(job)  # the job stays done
        if as_stored:
            stored = await _open_stored(request, job.result_id)
            if stored is not None:
                with stored:  # the limit leaves the file alone until it is sent
                    return await _send_stored(request, stored)
        # in memory only (a write behind, or one that failed), or to be blended, shrunk
        # or encoded: the pixels themselves; None when the file is gone or damaged
        pixels = await render(images, job, options)
        if pixels is not None:
            break
    if pixels is None:
        raise errors.ResultRemakeFailed(
            "the result was made again but removed before it was served; "
            "the image store's limit may be too small for it",
            details={"reason": "evicted"},
        )
    height, width, channels = pixels.shape
    headers = _image_headers(width, height, channels, pixels.dtype.itemsize * 8)
    if options.format == "raw":
        return web.Response(body=pixels.tobytes(), headers=headers, content_type=RAW_MEDIA_TYPE)
    data = await loop.run_in_executor(
        request.app[IMAGING_POOL], encode_file, pixels, options.format
    )
    return web.Response(body=data, headers=headers, content_type=f"image/{options.format}")


def _image_headers(width: int, height: int, channels: int, depth: int) -> dict[str, str]:
    return {
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": str(channels),
        "X-Image-Depth": str(depth),
    }


async def _send_stored(request: web.Request, stored: OpenImage) -> web.StreamResponse:
    info = stored.info
    headers = _image_headers(info.width, info.height, info.channels, info.depth)
    return await file_part_response(
        request,
        stored.file,
        stored.offset,
        stored.size,
        headers=headers,
        content_type=RAW_MEDIA_TYPE,
    )


async def _open_stored(request: web.Request, key: str) -> OpenImage | None:
    """The store's file of `key`, open and checked (in the imaging pool: a file found
    on disk at start is hashed the first time). Closed here if the request is
    cancelled meanwhile, so the store's limit is never kept from it."""
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(request.app[IMAGING_POOL], request.app[IMAGES].open_pixels, key)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future) -> None:
    if not opening.cancelled() and opening.exception() is None and opening.result() is not None:
        opening.result().close()


def _render(images, job: Job, options: ResultQuery) -> np.ndarray | None:
    """The result as asked for; None when it is no longer stored."""
    result = images.load(job.result_id)
    if result is None:
        return None
    original = None
    if options.intensity is not None and options.intensity < 1.0:
        original = images.load(job.request.image_id) if job.request.image_id else None
        if original is None or original.shape != result.shape:
            raise errors.ImageNotFound("the original is needed for a blend and is not stored")
    if options.max_side is not None:
        # Resizing (INTER_AREA) and the blend are both linear: shrink first, blend less.
        result = fit_within(result, options.max_side)
        if original is not None:
            original = fit_within(original, options.max_side)
    if original is not None:
        result = result_at_intensity(original, result, float(options.intensity))
    return np.ascontiguousarray(result)
