"""A WebSocket client on a bare socket, for what the typed client (sidecar.client)
cannot do: send any opcode, reserved bits, unmasked frames, broken UTF-8, half frames,
or open the socket and never read it again (a stalled client)."""

from __future__ import annotations

import base64
import os
import socket
import struct

from sidecar.settings import LOOPBACK


def connect(
    port: int, token: str, timeout: float = 5.0, *, receive_buffer: int | None = None
) -> socket.socket:
    """Open /v1/ws and read the 101 answer; the socket is left after the handshake.
    With `receive_buffer` (bytes) the kernel's receive window is that small: a socket
    never read again then stalls the sidecar's sends to it after a few frames."""
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: the window is agreed then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    try:
        sock.connect((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1)  # to the end of the answer's head, not into a frame
        if not chunk:
            raise ConnectionError("closed during the handshake")
        answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        sock.close()
        raise ConnectionError(status.decode(errors="replace"))
    return sock


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0x0F)
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack(">BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack(">BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack(">BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def drain(sock: socket.socket, seconds: float) -> bytes:
    """Whatever the server sends within `seconds` (until it closes)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionError):
        pass
    return received
