"""The WebSocket's binary preview frame, both ways:

    uint32 big-endian header length | header JSON (a PreviewHeader) | JPEG bytes

The sidecar encodes; Python clients (the tests, the benchmarks) decode with
`decode_preview_frame`, which refuses anything malformed with `FrameError` and never
trusts the declared length further than the bytes that are there.
"""

from __future__ import annotations

import struct

from pydantic import ValidationError

from .events import PreviewHeader

LENGTH = struct.Struct(">I")
MAX_HEADER = 64 * 1024  # a header is a few hundred bytes


class FrameError(ValueError):
    """The bytes are not a preview frame."""


def encode_preview_frame(header: PreviewHeader, jpeg: bytes) -> bytes:
    text = header.model_dump_json(exclude_none=True).encode()
    return LENGTH.pack(len(text)) + text + jpeg


def decode_preview_frame(data: bytes | bytearray | memoryview) -> tuple[PreviewHeader, bytes]:
    view = memoryview(data).cast("B")
    if len(view) < LENGTH.size:
        raise FrameError(f"a frame is at least {LENGTH.size} bytes; got {len(view)}")
    (length,) = LENGTH.unpack_from(view)
    if length > MAX_HEADER or LENGTH.size + length > len(view):
        raise FrameError(f"header length {length} does not fit a {len(view)}-byte frame")
    end = LENGTH.size + length
    try:
        header = PreviewHeader.model_validate_json(bytes(view[LENGTH.size : end]))
    except ValidationError as exc:
        raise FrameError(f"not a preview header ({exc.error_count()} errors)") from None
    return header, bytes(view[end:])
