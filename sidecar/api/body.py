"""Reading a request body as a stream, under a byte cap."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import InvalidImage, PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is over the limit of {limit} bytes", details={"max_bytes": limit}
    )


async def read_capped(
    request: web.Request,
    limit: int,
    *,
    exact: int | None = None,
    on_progress: Callable[[bytearray | memoryview, int], None] | None = None,
) -> bytearray:
    """Read the whole body, refusing it as soon as it passes `limit` (413) or, when
    `exact` is given, the moment it can no longer be exactly that long (422).
    `on_progress(buffer_so_far, nbytes)` may raise to stop early."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    if exact is not None and declared is not None and declared != exact:
        raise _length_mismatch(declared, exact)
    size = exact if exact is not None else declared
    if size is not None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        async for chunk in _chunks(request):
            end = received + len(chunk)
            if end > size:
                raise _length_mismatch(end, size) if exact is not None else _too_large(limit)
            view[received:end] = chunk
            received = end
            if on_progress:
                on_progress(view, received)
        if received != size:
            if exact is not None:
                raise _length_mismatch(received, exact)
            raise InvalidImage("request body ended early", details={"received": received})
        return buffer
    buffer = bytearray()
    async for chunk in _chunks(request):
        if len(buffer) + len(chunk) > limit:
            raise _too_large(limit)
        if exact is not None and len(buffer) + len(chunk) > exact:
            raise _length_mismatch(len(buffer) + len(chunk), exact)
        buffer += chunk
        if on_progress:
            on_progress(buffer, len(buffer))
    if exact is not None and len(buffer) != exact:
        raise _length_mismatch(len(buffer), exact)
    return buffer


async def _chunks(request: web.Request):
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return
            yield chunk
    except (HttpProcessingError, ClientPayloadError, ConnectionError) as exc:
        raise InvalidImage("request body could not be read to its end") from exc


def _length_mismatch(received: int, expected: int) -> InvalidImage:
    return InvalidImage(
        f"raw body is {received} bytes but the X-Image-* headers describe {expected}",
        details={"received": received, "expected": expected},
    )
