"""POST /v1/images, POST /v1/images/file, HEAD /v1/images/{image_id} and its skin tone."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import numpy as np
from aiohttp import web
from pydantic import ValidationError

from ..errors import (
    EngineUnavailable,
    ImageNotFound,
    InvalidRequest,
    OutOfMemory,
    UnsupportedMediaType,
)
from ..imaging import Limits, canonical_from_raw, check_dimensions, decode_image, read_header
from ..imaging.decode import MEDIA_TYPES
from ..imaging.pixels import raw_nbytes
from ..schema import ImageFileRequest, ImageInfo, Op, RawPixelHeaders, SkinTone
from .body import Body, read_capped
from .keys import (
    BODY_BUFFERS,
    ENGINES,
    IMAGES,
    IMAGING_POOL,
    SCHEDULER,
    SETTINGS,
    SKIN_TONE_GATE,
)
from .responses import model_response
from .validation import json_body

RAW_MEDIA_TYPE = "application/octet-stream"
EARLY_HEADER_BYTES = 256 * 1024  # try to read the header once this much has arrived
# Skin tones measured at once (in the imaging pool, beside the worker thread): one, so
# the pool's other thread stays free for uploads and results. See docs/design.md,
# "Who computes".
SKIN_TONE_AT_ONCE = 1

routes = web.RouteTableDef()


@routes.post("/v1/images")
async def upload_image(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    limits = Limits(settings.max_megapixels, settings.max_side)
    if "Content-Type" not in request.headers:
        raise UnsupportedMediaType("Content-Type is required", details=_accepted())
    media_type = request.content_type.lower()
    if media_type == RAW_MEDIA_TYPE:
        read = _read_raw(request, limits, settings.max_upload_bytes)
    elif media_type in MEDIA_TYPES:
        read = _read_encoded(request, MEDIA_TYPES[media_type], limits, settings.max_upload_bytes)
    else:
        raise UnsupportedMediaType(f"cannot take {media_type}", details=_accepted())
    info, created = await read
    return _image_info(info, created)


@routes.post("/v1/images/file")
async def register_file(request: web.Request) -> web.Response:
    """An image file on this machine, read by the sidecar itself (decoded as its upload
    would be) and kept as a reference to the file, with no copy in the image store."""
    body = await json_body(request, ImageFileRequest)
    settings = request.app[SETTINGS]
    limits = Limits(settings.max_megapixels, settings.max_side)
    store = request.app[IMAGES]
    try:
        info, created = await _run(
            request, store.register_file, Path(body.path), limits, settings.max_upload_bytes
        )
    except MemoryError as exc:  # hashing, or holding the pixels
        raise OutOfMemory("not enough memory to take this image now: retry later") from exc
    return _image_info(info, created)


def _image_info(info, created: bool) -> web.Response:
    body = ImageInfo(
        image_id=info.image_id,
        width=info.width,
        height=info.height,
        channels=info.channels,
        depth=info.depth,
    )
    return model_response(body, status=201 if created else 200)


@routes.head("/v1/images/{image_id}")
async def image_exists(request: web.Request) -> web.Response:
    key = request.match_info["image_id"]
    store = request.app[IMAGES]
    if not await _run(request, store.has, key):
        raise ImageNotFound("no such image", details={"image_id": key[:64]})
    return web.Response(status=200)


@routes.get("/v1/images/{image_id}/skin-tone")
async def skin_tone(request: web.Request) -> web.Response:
    """The one model computation outside the worker thread (docs/design.md, "Who
    computes"): the engine reads the image's analysis (faces and skin mask) from the
    stage cache, and computes it only when it is not there, in the imaging pool, one
    request at a time; no job, no queue."""
    key = request.match_info["image_id"]
    store = request.app[IMAGES]
    if not await _run(request, store.has, key):  # a bad id is 404 whatever the engines
        raise ImageNotFound("no such image", details={"image_id": key[:64]})
    engine = request.app[ENGINES].get(Op.color)
    measure = engine.skin_tone if engine is not None else None
    if measure is None:
        raise EngineUnavailable("no engine measures skin tone", details={"op": "color"})

    def load():
        pixels = store.load(key)
        if pixels is None:
            raise ImageNotFound("no such image", details={"image_id": key[:64]})
        return pixels

    def measure_ahead(key: str, load):
        # what is worked out ahead of the image's jobs (its analysis) stays in memory
        # until they end: the batch asks for every image before queueing it
        with request.app[SCHEDULER].stage_scopes.ahead(key):
            return measure(key, load)

    tone = await _run_gated(request, request.app[SKIN_TONE_GATE], measure_ahead, key, load)
    a, b = tone if tone is not None else (None, None)
    return model_response(SkinTone(image_id=key, a=a, b=b))


async def _read_raw(request: web.Request, limits: Limits, max_bytes: int):
    fields = {
        "width": request.headers.get("X-Image-Width"),
        "height": request.headers.get("X-Image-Height"),
        "channels": request.headers.get("X-Image-Channels"),
        "depth": request.headers.get("X-Image-Depth"),
    }
    try:
        raw = RawPixelHeaders.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InvalidRequest(
            "raw uploads need valid X-Image-Width, X-Image-Height, X-Image-Channels (3|4) "
            "and X-Image-Depth (8|16) headers",
            details={
                "errors": exc.errors(include_url=False, include_input=False, include_context=False)
            },
        ) from exc
    check_dimensions(raw.width, raw.height, limits)
    expected = raw_nbytes(raw.width, raw.height, raw.channels, raw.depth)
    body = await read_capped(request, max_bytes, request.app[BODY_BUFFERS], exact=expected)
    return await _store(
        request, body, canonical_from_raw, raw.width, raw.height, raw.channels, raw.depth
    )


async def _read_encoded(request: web.Request, fmt, limits: Limits, max_bytes: int):
    tried_early = False

    def check_early(received_view: memoryview, received: int) -> None:
        # Refuse an oversized image from its header, before the rest of the body arrives.
        nonlocal tried_early
        if tried_early or received < EARLY_HEADER_BYTES:
            return
        tried_early = True
        header = read_header(received_view, fmt, complete=False)
        if header is not None:
            check_dimensions(header.width, header.height, limits)

    body = await read_capped(request, max_bytes, request.app[BODY_BUFFERS], on_progress=check_early)

    def decode(view: memoryview) -> np.ndarray:
        # read again from the whole body: a PNG's orientation may follow its pixels
        header = read_header(view, fmt, complete=True)
        check_dimensions(header.width, header.height, limits)  # before any decoding
        return decode_image(view, header, limits)

    return await _store(request, body, decode)


async def _store(request: web.Request, body: Body, to_pixels, *args):
    """Turn the body into canonical pixels and store them (in the imaging pool).
    The body's buffer goes back to the pool as soon as nothing refers to it: at once,
    or, when the stored pixels are a view of it, after their disk write."""
    pool = request.app[BODY_BUFFERS]
    store = request.app[IMAGES]

    def work():
        pixels = to_pixels(body.view, *args)
        keeps_body = np.may_share_memory(pixels, np.frombuffer(body.buffer, dtype=np.uint8))
        release = partial(pool.give, body.buffer)
        info, created = store.put(pixels, on_released=release if keeps_body else None)
        return info, created, created and keeps_body

    try:
        info, created, handed_over = await _run(request, work)
    except BaseException as exc:
        pool.give(body.buffer)
        if isinstance(exc, MemoryError):  # decoding, converting or hashing
            raise OutOfMemory(
                "not enough memory to take this image now: retry when other work has "
                "finished, or send a smaller image"
            ) from exc
        raise
    if not handed_over:
        pool.give(body.buffer)
    return info, created


async def _run(request: web.Request, fn, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[IMAGING_POOL], fn, *args)


async def _run_gated(request: web.Request, gate: asyncio.Semaphore, fn, *args):
    """`_run` holding `gate` until `fn` has returned in its thread: a request that goes
    away while waiting for it cannot let another computation start beside it."""
    await gate.acquire()
    try:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(request.app[IMAGING_POOL], fn, *args)
    except BaseException:
        gate.release()
        raise
    future.add_done_callback(partial(_release, gate))
    return await asyncio.shield(future)


def _release(gate: asyncio.Semaphore, future: asyncio.Future) -> None:
    gate.release()
    if not future.cancelled():
        future.exception()  # retrieved: no "never retrieved" log when nobody awaited it


def _accepted() -> dict[str, list[str]]:
    return {"accepted": sorted({*MEDIA_TYPES, RAW_MEDIA_TYPE})}
