"""The least that moving bytes over loopback costs, for the floors (bench/floors.py):
a server in a process of its own, as the sidecar is, so that neither end waits on the
other's interpreter.

    python -m bench.loopback --port P --raw-port R [--file F]

answers GET /health, sends F for any other GET by sendfile (aiohttp's web.FileResponse),
and on R drains what each connection sends (an 8-byte length, then that many bytes)
into a buffer and answers one byte, once per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .sidecar import Server, free_port

ANY_ID = "0" * 32  # the server answers every path with its file
ACK = b"k"


class LoopbackServer(Server):
    """`with LoopbackServer(root, file) as server:` the process above, on `port` (HTTP)
    and `raw_port` (the drain); its output goes to `server.log` under `root`."""

    health = "/health"
    label = "the loopback floor server"

    def __init__(self, root: Path, file: Path | None = None) -> None:
        super().__init__(root)
        self.file = file
        self.raw_port = free_port()

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "bench.loopback", "--port", str(self.port)]
        command += ["--raw-port", str(self.raw_port)]
        return command + (["--file", str(self.file)] if self.file else [])


def write_noise(path: Path, nbytes: int) -> None:
    """`nbytes` of noise (not a sparse file: every page real), on the disk and in the
    page cache, as a stored result is (fsync'd: no writeback under the measurement)."""
    block = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    with path.open("wb") as out:
        for start in range(0, nbytes, len(block)):
            out.write(block[: nbytes - start])
        out.flush()
        os.fsync(out.fileno())


async def sendfile_seconds(nbytes: int, runs: int) -> list[float]:
    """Seconds of GET → the last byte of `nbytes` sent by sendfile over loopback, read
    by the product's client code (`SidecarClient.result`, format raw, into one kept
    buffer as the harness reads a result); a first GET warms the connection, the page
    cache and the buffer and is not counted."""
    from sidecar.client import SidecarClient

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        path = Path(tmp) / "result.raw"
        await asyncio.to_thread(write_noise, path, nbytes)
        server = LoopbackServer(Path(tmp) / "server", path)
        server.start()
        try:
            await asyncio.to_thread(server.wait_ready)
            async with SidecarClient.open(server.port, "-") as client:
                times, kept = [], bytearray()  # read as the harness reads a result
                for run in range(runs + 1):
                    start = time.perf_counter()
                    body = await client.result(ANY_ID, {"format": "raw"}, into=kept)
                    seconds = time.perf_counter() - start
                    if len(body) != nbytes:
                        raise RuntimeError(f"the floor's GET read {len(body)} of {nbytes} bytes")
                    del body
                    if run:
                        times.append(seconds)
        finally:
            await asyncio.to_thread(server.stop)
    return times


def socket_seconds(body: memoryview, runs: int) -> list[float]:
    """Seconds of one sendall of `body` (after its 8-byte length) on a kept-alive
    loopback TCP connection until the server has drained it into a buffer and answered
    one byte; a first transfer warms the connection and the buffer and is not counted.
    Blocking: run it in a thread."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        with LoopbackServer(Path(tmp)) as server:
            address = ("127.0.0.1", server.raw_port)
            with socket.create_connection(address, timeout=120) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                times = []
                for run in range(runs + 1):
                    start = time.perf_counter()
                    sock.sendall(len(body).to_bytes(8, "big"))
                    sock.sendall(body)
                    if sock.recv(1) != ACK:
                        raise RuntimeError(f"the floor's reader hung up\n{server.describe()}")
                    if run:
                        times.append(time.perf_counter() - start)
    return times


# -- the server process ----------------------------------------------------------------


def _exactly(conn: socket.socket, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def _drain(conn: socket.socket) -> None:
    buffer = bytearray()
    with conn:
        head = memoryview(bytearray(8))
        while _exactly(conn, head):
            size = int.from_bytes(head, "big")
            if len(buffer) < size:
                buffer = bytearray(size)
            if not _exactly(conn, memoryview(buffer)[:size]):
                return
            conn.sendall(ACK)


def _accept(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_drain, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw-port", type=int, required=True)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args(argv)
    listener = socket.create_server(("127.0.0.1", args.raw_port))
    threading.Thread(target=_accept, args=(listener,), daemon=True).start()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def send(request: web.Request) -> web.StreamResponse:
        if args.file is None:
            raise web.HTTPNotFound()
        return web.FileResponse(args.file)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/{tail:.*}", send)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
