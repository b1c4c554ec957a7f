"""JSON responses built from the pydantic models of the contract, and a part of a file
sent as a body by the kernel (the raw result, from the image store's file)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import BinaryIO

from aiohttp import hdrs, web
from pydantic import BaseModel

from ..errors import ApiError
from ..schema import ErrorBody, ErrorDetail


def model_response(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def error_response(error: ApiError) -> web.Response:
    body = ErrorBody(
        error=ErrorDetail(code=error.code, message=error.message, details=error.details)
    )
    response = model_response(body, status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="retouch-sidecar"'
    return response


FILE_CHUNK = 1 << 20  # bytes read at a time where the loop cannot sendfile


async def file_part_response(
    request: web.Request,
    file: BinaryIO,
    offset: int,
    size: int,
    *,
    headers: Mapping[str, str],
    content_type: str,
) -> web.StreamResponse:
    """Send `size` bytes of `file` from `offset` as the whole body of a 200 and return
    the finished response. The kernel copies them from the file to the socket
    (`loop.sendfile`: sendfile(2) on a plain socket, asyncio's own read-and-write
    where it cannot), so the body never passes through Python's memory. The caller
    keeps the file open (and in place) until this returns. A client gone meanwhile is
    a `ConnectionResetError`, which aiohttp takes as a dropped connection."""
    response = web.StreamResponse(headers=headers)
    response.content_type = content_type
    response.content_length = size
    await response.prepare(request)  # sends the status line and headers now
    if request.method != hdrs.METH_HEAD and size:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        loop = asyncio.get_running_loop()
        try:
            try:
                sent = await loop.sendfile(transport, file, offset, size)
            except NotImplementedError:  # a loop without sendfile at all (uvloop)
                sent = await _send_in_chunks(response, file, offset, size)
        except (ConnectionError, RuntimeError) as exc:  # RuntimeError: transport closing
            raise ConnectionResetError("the client went away") from exc
        if sent != size:
            # The headers promised `size` bytes: the connection is dropped (aiohttp does
            # when a handler fails after its headers went out), never padded or reused.
            raise ConnectionResetError(f"the file was cut short: {sent} of {size} bytes")
    await response.write_eof()
    return response


async def _send_in_chunks(
    response: web.StreamResponse, file: BinaryIO, offset: int, size: int
) -> int:
    """`loop.sendfile`'s own fallback, for a loop that has none: bytes sent."""
    loop = asyncio.get_running_loop()
    file.seek(offset)
    sent = 0
    while sent < size:
        chunk = await loop.run_in_executor(None, file.read, min(FILE_CHUNK, size - sent))
        if not chunk:
            break
        await response.write(chunk)
        sent += len(chunk)
    return sent
