"""The benchmark harness fails fast: a server that exits under a wait ends it at once,
with the end of the server's log, instead of leaving it to a timeout; and what it does
in threads lets its event loop run (the naive body is encoded in pieces)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time

import numpy as np
import pytest

from bench.harness import B64_PIECE, Harness, naive_upload_body
from bench.sidecar import LOG_LINES, Server, ServerDied, Sidecar


class Exits(Server):
    """A server that says goodbye and exits with status 3."""

    label = "the test server"

    def command(self) -> list[str]:
        return [sys.executable, "-c", "print('goodbye', flush=True); raise SystemExit(3)"]


def write_lines(server: Server, count: int) -> None:
    with server.log_path.open("a") as log:
        log.writelines(f"log line {n:02d}\n" for n in range(count))


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 4), (B64_PIECE // 6 + 1, 2, 3)])
def test_the_naive_body_is_json_dumps_of_the_base64_pixels_encoded_in_pieces(shape):
    pixels = np.random.default_rng(0).integers(0, 65536, shape, dtype=np.uint16)
    height, width, channels = shape
    encoded = base64.b64encode(pixels.tobytes()).decode()
    fields = {"width": width, "height": height, "channels": channels, "depth": 16}
    assert naive_upload_body(pixels) == json.dumps({**fields, "pixels": encoded}).encode()


def test_the_log_tail_is_the_last_lines_of_the_servers_output(tmp_path):
    server = Sidecar(tmp_path)
    assert server.log_tail() == ""
    tmp_path.mkdir(exist_ok=True)
    write_lines(server, 60)
    tail = server.log_tail().splitlines()
    assert len(tail) == LOG_LINES and tail[-1] == "log line 59" and tail[0] == "log line 20"
    assert "not started" in server.describe() and str(server.log_path) in server.describe()


async def test_a_servers_exit_is_seen_with_its_status_and_its_output(tmp_path):
    server = Exits(tmp_path)
    server.start()
    try:
        assert await asyncio.wait_for(server.exited(), 30) == 3
    finally:
        server.stop()
    described = server.describe()
    assert "exited with code 3" in described and "goodbye" in described


@pytest.mark.linux_only  # kill -9
async def test_a_sidecar_killed_under_a_wait_fails_it_at_once_with_its_log(tmp_path):
    async with Harness(tmp_path, "--engine", "synthetic", naive=False) as h:
        image_id = await h.upload(np.zeros((32, 48, 3), np.uint8))
        body = {"op": "beauty", "image_id": image_id, "params": {"steps": 100, "step_ms": 1000}}
        job_id = (await h.submit(body)).job_id
        await asyncio.wait_for(h.events.expect(job_id, "started"), 60)
        waiting = asyncio.create_task(h.finished(job_id))
        write_lines(h.product, 60)  # the sidecar's last words, as far as its log goes
        killed = time.perf_counter()
        h.product.proc.kill()
        with pytest.raises((ServerDied, ConnectionError)) as caught:
            await asyncio.wait_for(waiting, 30)
        assert time.perf_counter() - killed < 5  # not the 900 s of the wait's limit
        message = str(caught.value)
        assert "log line 59" in message and "log line 10" not in message
        with pytest.raises(ServerDied, match="exited with code -9") as later:
            await asyncio.wait_for(h.submit(body), 30)  # and every later wait, at once
        assert "log line 59" in str(later.value)
