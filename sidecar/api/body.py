"""Reading a request body as a stream, under a byte cap, into one flat buffer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import InvalidImage, PayloadTooLarge
from ..imaging.buffers import BufferPool

Progress = Callable[[memoryview, int], None]
FIRST_CHUNKED_CAPACITY = 1 << 20


@dataclass
class Body:
    buffer: bytearray  # may be longer than the body; from the pool when the size was known
    size: int

    @property
    def view(self) -> memoryview:
        return memoryview(self.buffer)[: self.size]


async def read_capped(
    request: web.Request,
    limit: int,
    pool: BufferPool,
    *,
    exact: int | None = None,
    on_progress: Progress | None = None,
) -> Body:
    """Read the whole body, refusing it as soon as it passes `limit` (413) or, when
    `exact` is given, the moment it cannot be exactly that long (422).
    `on_progress(received_view, count)` may raise to stop early. On error the buffer
    goes back to the pool; on success the caller owns it."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    if exact is not None and declared is not None and declared != exact:
        raise _length_mismatch(declared, exact)
    capacity = exact if exact is not None else declared
    growable = capacity is None
    buffer = bytearray(min(limit, FIRST_CHUNKED_CAPACITY)) if growable else pool.take(capacity)
    capacity = len(buffer) if growable else capacity
    received = 0
    try:
        async for chunk in _chunks(request):
            end = received + len(chunk)
            if end > limit:
                raise _too_large(limit)
            if exact is not None and end > exact:
                raise _length_mismatch(end, exact)
            if end > capacity:
                if not growable:
                    raise InvalidImage("request body is longer than its Content-Length")
                capacity = min(limit, max(end, 2 * capacity))
                grown = bytearray(capacity)
                grown[:received] = memoryview(buffer)[:received]
                buffer = grown
            memoryview(buffer)[received:end] = chunk
            received = end
            if on_progress is not None:
                on_progress(memoryview(buffer)[:received], received)
        if exact is not None and received != exact:
            raise _length_mismatch(received, exact)
        if declared is not None and received != declared:
            raise InvalidImage("request body ended early", details={"received": received})
    except BaseException:
        pool.give(buffer)
        raise
    return Body(buffer, received)


async def _chunks(request: web.Request):
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return
            yield chunk
    except (HttpProcessingError, ClientPayloadError, ConnectionError) as exc:
        raise InvalidImage("request body could not be read to its end") from exc


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is over the limit of {limit} bytes", details={"max_bytes": limit}
    )


def _length_mismatch(received: int, expected: int) -> InvalidImage:
    return InvalidImage(
        f"raw body is {'at least ' if received > expected else ''}{received} bytes but the "
        f"X-Image-* headers describe {expected}",
        details={"received": received, "expected": expected},
    )
