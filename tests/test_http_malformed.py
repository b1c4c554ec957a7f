"""HTTP that aiohttp refuses before any middleware runs (an over-long header, a bad
request line, a header without a colon, broken chunked encoding, a bad
Content-Length) is answered in the sidecar's JSON error body with a stable code, the
token is neither echoed nor logged, and the server goes on serving."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import pytest
from aiohttp import web
from live_server import SidecarProcess

from sidecar.api import AccessLogger, protocol
from sidecar.api.protocol import JsonErrorRunner
from sidecar.schema import ErrorBody
from sidecar.settings import LOOPBACK

TIMEOUT = 10  # seconds for any one answer


@pytest.fixture
async def port(app):
    """The real app on a free loopback port, served by JsonErrorRunner as
    `retouch-sidecar serve` serves it."""
    runner = JsonErrorRunner(app, access_log_class=AccessLogger, shutdown_timeout=10)
    await runner.setup()
    try:
        await web.TCPSite(runner, LOOPBACK, 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def exchange(port: int, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """Send raw bytes, read the answer to the end: (status line, headers, body)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_line, headers, body


def get(port: int, path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def bearer(auth: dict[str, str]) -> str:
    return f"Authorization: {auth['Authorization']}"


def post_images(port: int, token: str, framing: str, body: str) -> bytes:
    return (
        f"POST /v1/images HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: image/png\r\n{framing}\r\n\r\n{body}"
    ).encode("latin-1")


MALFORMED = {
    "64 KB header": (
        lambda port, token: get(port, "/v1/health", "X-Big: " + "a" * 65536),
        431,
        "headers_too_large",
    ),
    "64 KB request line": (
        lambda port, token: get(port, "/v1/" + "a" * 65536),
        431,
        "headers_too_large",
    ),
    "bad request line": (lambda port, token: b"GARBAGE\r\n\r\n", 400, "bad_request"),
    "header without colon": (
        lambda port, token: get(port, "/v1/jobs", f"Authorization Bearer {token}"),
        400,
        "bad_request",
    ),
    "bad chunk size": (
        lambda port, token: post_images(
            port, token, "Transfer-Encoding: chunked", "zz\r\nhello\r\n0\r\n\r\n"
        ),
        400,
        "bad_request",
    ),
    "chunk longer than its size": (
        lambda port, token: post_images(
            port, token, "Transfer-Encoding: chunked", "5\r\nhelloXX\r\n0\r\n\r\n"
        ),
        400,
        "bad_request",
    ),
    "Content-Length not a number": (
        lambda port, token: post_images(port, token, "Content-Length: abc", ""),
        400,
        "bad_request",
    ),
    "two Content-Lengths": (
        lambda port, token: post_images(
            port, token, "Content-Length: 5\r\nContent-Length: 6", "hello"
        ),
        400,
        "bad_request",
    ),
}

REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_http_gets_the_json_error_body(case, port, token, auth, caplog):
    make, status, code = MALFORMED[case]
    with caplog.at_level(logging.DEBUG):
        status_line, headers, body = await exchange(port, make(port, token))
    version, got_status, reason = status_line.split(b" ", 2)
    assert version in (b"HTTP/1.0", b"HTTP/1.1"), status_line
    assert (int(got_status), reason) == (status, REASONS[status]), status_line
    assert headers["content-type"].split(";")[0] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = ErrorBody.model_validate_json(body).error
    assert error.code == code
    assert error.message and set(json.loads(body)["error"]) == {"code", "message", "details"}
    assert token not in body.decode() and "Bearer" not in body.decode()
    assert b"aaaa" not in body and b"GARBAGE" not in body  # nothing the client sent
    assert token not in caplog.text and "Traceback" not in caplog.text
    [refusal] = [r for r in caplog.records if r.name == "sidecar.api.protocol"]
    assert refusal.levelno == logging.WARNING and code in refusal.getMessage()
    if code == "headers_too_large":
        assert error.details == {"max_bytes": 8190}

    # the server goes on: a normal request on a new connection is answered as always
    status_line, headers, body = await exchange(port, get(port, "/v1/health"))
    assert status_line.split(b" ")[1] == b"200"
    assert json.loads(body)["status"] == "ok"
    status_line, _, body = await exchange(port, get(port, "/v1/jobs", bearer(auth)))
    assert status_line.split(b" ")[1] == b"200", body


async def test_one_connection_after_a_malformed_one(port, token):
    """Refusals close their own connection only; several in a row change nothing."""
    for make, status, _ in MALFORMED.values():
        status_line, _, _ = await exchange(port, make(port, token))
        assert int(status_line.split(b" ")[1]) == status
    status_line, _, _ = await exchange(port, get(port, "/v1/health"))
    assert status_line.split(b" ")[1] == b"200"


@pytest.fixture
def crashing_app(app):
    async def crash(request: web.Request) -> web.Response:
        # re-raised by the error middleware, so aiohttp's handle_error answers it
        raise ConnectionResetError("secret internal detail")

    app.router.add_get("/v1/crash", crash)
    return app


async def test_a_crash_past_the_middleware_is_a_bare_internal_error(
    crashing_app, port, auth, caplog
):
    with caplog.at_level(logging.DEBUG):
        status_line, headers, body = await exchange(port, get(port, "/v1/crash", bearer(auth)))
    assert status_line.split(b" ", 1)[1] == b"500 Internal Server Error"
    assert headers["content-type"].split(";")[0] == "application/json"
    assert ErrorBody.model_validate_json(body).error.code == "internal_error"
    assert b"secret" not in body and b"Traceback" not in body
    assert "secret internal detail" in caplog.text  # for the user, in the log only


def test_the_hook_holds_on_this_aiohttp():
    """Should an aiohttp upgrade move the hook, the runner serves aiohttp's plain-text
    errors: this fails first, so the upgrade is seen."""
    assert protocol.hooked()


async def test_without_the_hook_the_runner_is_aiohttps(app, monkeypatch):
    monkeypatch.setattr(protocol, "HOOKED", False)
    runner = JsonErrorRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, LOOPBACK, 0).start()
        port = runner.addresses[0][1]
        status_line, headers, _ = await exchange(port, b"GARBAGE\r\n\r\n")
        assert status_line.split(b" ")[1] == b"400"
        assert headers["content-type"].startswith("text/plain")  # aiohttp's, not ours
        status_line, _, _ = await exchange(port, get(port, "/v1/health"))
        assert status_line.split(b" ")[1] == b"200"
    finally:
        await runner.cleanup()


@pytest.mark.linux_only  # SIGTERM the POSIX way
async def test_serve_answers_in_json_and_stops_on_sigterm(tmp_path):
    """`retouch-sidecar serve` itself runs JsonErrorRunner, and SIGTERM still stops it
    cleanly (exit 0), as web.run_app did."""
    sidecar = SidecarProcess(tmp_path, "--engine", "synthetic")
    await asyncio.to_thread(sidecar.start)
    try:
        big = get(sidecar.port, "/v1/health", "X-Big: " + "a" * 65536)
        status_line, headers, body = await exchange(sidecar.port, big)
        assert status_line.split(b" ")[1] == b"431"
        assert headers["content-type"].split(";")[0] == "application/json"
        assert ErrorBody.model_validate_json(body).error.code == "headers_too_large"
        status_line, _, _ = await exchange(sidecar.port, get(sidecar.port, "/v1/health"))
        assert status_line.split(b" ")[1] == b"200"
    finally:
        sidecar.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(sidecar.proc.wait, 30)
    assert code == 0, sidecar.log()[-2000:]
    assert "refused malformed request" in sidecar.log()
