"""A real `retouch-sidecar serve` process: it listens on loopback and nowhere else, no
setting makes it bind another address, and its token never reaches its log (at
DEBUG) or a response, whatever the requests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import raw_ws
from helpers import raw_headers
from live_server import SidecarProcess

from sidecar.settings import LOOPBACK

pytestmark = pytest.mark.linux_only  # reads /proc/net/tcp and /proc/<pid>


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    root = tmp_path_factory.mktemp("process")
    with SidecarProcess(root, "--engine", "synthetic", "--log-level", "DEBUG") as process:
        yield process


def listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on `port` (hex, as /proc writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def outward_address() -> str | None:
    """This machine's address on its outward interface (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: routed, never reached
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_it_listens_on_loopback_and_nowhere_else(sidecar):
    assert listening_addresses(sidecar.port) == {"0100007F"}  # 127.0.0.1, no IPv6, no 0.0.0.0
    outward = outward_address()
    if outward is None:
        pytest.skip("no outward interface to try")
    with pytest.raises(OSError):
        socket.create_connection((outward, sidecar.port), timeout=2).close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "localhost", "127.0.0.2"])  # noqa: S104
def test_no_setting_makes_it_bind_another_address(tmp_path, host):
    env = {**os.environ, "RETOUCH_HOST": host, "RETOUCH_CONFIG_DIR": str(tmp_path / "k")}
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "host" in done.stderr, done.stderr
    assert LOOPBACK == "127.0.0.1"


def test_there_is_no_host_flag():
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_the_token_never_reaches_the_log_or_a_response(sidecar):
    token = sidecar.token
    http = sidecar.http()
    anonymous = type(http)(sidecar.port, None)
    pixels = np.full((8, 8, 3), 5, np.uint8)
    answers = [
        http.request("POST", "/v1/images", pixels.tobytes(), raw_headers(pixels)),
        http.request("GET", "/v1/jobs"),
        http.request("GET", "/v1/jobs/" + "0" * 32),
        http.json("POST", "/v1/jobs", {"op": "beauty", "image_id": "nope", "token": token}),
        http.json("POST", "/v1/jobs", b"{" + token.encode()),
        anonymous.request("GET", f"/v1/jobs?token={token}"),
        anonymous.request("GET", f"/v1/predictions?after={token}&token={token}"),
        anonymous.request("POST", f"/v1/jobs?token={token}", b"{}"),  # query token: reads only
        anonymous.request("GET", "/v1/jobs", headers={"Authorization": f"Bearer {token}x"}),
        anonymous.request("GET", "/v1/jobs", headers={"Authorization": f"Basic {token}"}),
        anonymous.request("GET", "/v1/health", headers={"Host": f"evil.example?{token}"}),
        anonymous.request("GET", "/v1/nothing", headers={"Authorization": f"Bearer {token}"}),
    ]
    sock = raw_ws.connect(sidecar.port, token)  # the WebSocket's query token
    sock.sendall(raw_ws.frame(1, f'{{"type": "cancel", "job_id": "{token}"}}'.encode()))
    replies = raw_ws.drain(sock, 0.5)
    sock.close()
    assert {a.status for a in answers} >= {200, 401, 403, 404, 422}
    for answer in answers:
        assert token.encode() not in answer.body, answer.body[:300]
        assert token not in str(answer.headers)
    assert token.encode() not in replies
    log = sidecar.log()
    assert "/v1/jobs" in log and " 401 " in log  # the access log is on, at DEBUG
    assert token not in log
