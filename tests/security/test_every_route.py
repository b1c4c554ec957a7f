"""Every operation of the API, over raw HTTP: refused without the token (or with a
wrong one), refused to a foreign Host (DNS rebinding) or web Origin, before any
handler runs; a non-web Origin (`null`, a plugin's own scheme) changes nothing but
still needs the token; the WebSocket the same. The token is compared in constant
time."""

from __future__ import annotations

import hmac
import re

import pytest
import raw_ws
from live_server import synthetic_server

from sidecar.api.keys import SCHEDULER
from sidecar.api.openapi_routes import OPERATIONS

IDS = {"image_id": "0" * 64, "job_id": "0" * 32, "seq": "0", "document_id": "doc"}
PROTECTED = [op for op in OPERATIONS if not op.public]


def target(op) -> str:
    return re.sub(r"{(\w+)}", lambda m: IDS[m[1]], op.path)


def body_of(op) -> tuple[bytes | None, dict]:
    if op.body is not None:
        return b"{}", {"Content-Type": "application/json"}
    if op.body_media:
        return b"\x89PNG\r\n\x1a\n", {"Content-Type": "image/png"}
    return None, {}


def send(http, op, headers: dict | None = None, query: str = ""):
    """The operation with placeholder ids and a body of its media type, plus `headers`."""
    body, content_type = body_of(op)
    return http.request(
        op.method.upper(), target(op) + query, body, {**content_type, **(headers or {})}
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with synthetic_server(tmp_path_factory.mktemp("routes")) as live:
        yield live


def wrong_tokens(token: str) -> list[dict]:
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    return [
        {},
        {"Authorization": f"Bearer {near}"},  # one character off
        {"Authorization": f"Bearer {token[:-1]}"},  # a prefix
        {"Authorization": f"Bearer {token}{token}"},
        {"Authorization": token},  # no scheme
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {token.upper()}"},
    ]


@pytest.mark.parametrize("op", PROTECTED, ids=lambda op: f"{op.method} {op.path}")
def test_every_protected_operation_needs_the_token(server, op):
    http = server.http(token=None)
    for auth in wrong_tokens(server.token):
        answer = send(http, op, auth)
        assert answer.status == 401, (op.path, auth, answer.status, answer.body[:200])
        if op.method != "head":
            assert answer.code == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    if op.method not in ("get", "head"):  # a query token is for reads only
        answer = send(http, op, query=f"?token={server.token}")
        assert answer.status == 401


def test_refused_requests_change_nothing(server):
    http = server.http(token=None)
    http.json("POST", "/v1/jobs", {"op": "beauty", "image_id": "0" * 64})
    http.request("POST", "/v1/images", bytes(12), {"Content-Type": "application/octet-stream"})
    assert server.app[SCHEDULER].jobs == {}
    assert not list(server.settings.images_dir.rglob("*.img"))


REBOUND_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1",
    "127.0.0.1:1",
    "localhost",
    "127.0.0.1.nip.io:{port}",
    "localhost.:{port}",
    "sub.localhost:{port}",
    "127.1:{port}",
    "2130706433:{port}",
    "0x7f000001:{port}",
    "[::1]:{port}",
    "0.0.0.0:{port}",
    "127.0.0.1:{port}@evil.example",
    "127.0.0.1:{port}, evil.example",
    "",
]


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_every_operation_refuses_a_rebound_host(server, op):
    for host in REBOUND_HOSTS:
        answer = send(server.http(), op, {"Host": host.format(port=server.port)})
        assert answer.status in (400, 403), (host, answer.status)  # 400: no valid Host at all
        if answer.status == 403 and op.method != "head":
            assert answer.code == "forbidden_host"


FOREIGN_ORIGINS = [
    "https://evil.example",
    "http://127.0.0.1",
    "http://127.0.0.1:1",
    "https://127.0.0.1:{port}",
    "http://localhost:{port}.evil.example",
    "http://127.0.0.1:{port}/",
    "http://[::1]:{port}",
    "HTTP://127.0.0.1:{port}",
    "https:evil.example",
]
NON_WEB_ORIGINS = [
    "null",
    "uxp://com.retouch.mlpanel",
    "file://",
    "app://photoshop",
    "chrome-extension://abcdef",
    "",
]


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_every_operation_refuses_a_foreign_origin(server, op):
    for origin in FOREIGN_ORIGINS:
        answer = send(server.http(), op, {"Origin": origin.format(port=server.port)})
        assert answer.status == 403, (origin, answer.status)
        if op.method != "head":
            assert answer.code == "forbidden_origin"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_a_non_web_origin_changes_nothing(server, op):
    """What the route answers with the token (or, when public, without), and 401 on a
    protected route without it: the Origin decides nothing."""
    for origin in NON_WEB_ORIGINS:
        answer = send(server.http(), op, {"Origin": origin})
        assert answer.status not in (401, 403), (origin, answer.status, answer.body[:200])
        if op.public:
            continue
        answer = send(server.http(token=None), op, {"Origin": origin})
        assert answer.status == 401, (origin, answer.status)


def test_the_sidecars_own_origin_still_works(server):
    # the browser panel is served from the sidecar's own origin
    http = server.http()
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
        assert http.request("GET", "/v1/jobs", headers={"Origin": origin}).status == 200
        assert http.request("GET", "/v1/health", headers={"Origin": origin}).status == 200
        answer = http.request("GET", "/panel/", headers={"Origin": origin})
        assert answer.status in (200, 404)  # 404 only where the panel's files are absent


def handshake(server, path: str, extra: str = "") -> bytes:
    import socket

    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"{extra}\r\n"
            ).encode()
        )
        return sock.recv(4096).split(b"\r\n", 1)[0]
    finally:
        sock.close()


def test_the_websocket_needs_the_token_and_no_foreign_web_origin(server):
    token = server.token
    assert b" 401 " in handshake(server, "/v1/ws")
    assert b" 401 " in handshake(server, f"/v1/ws?token={token[:-1]}")
    assert b" 401 " in handshake(server, "/v1/ws?token=")
    # cross-site WebSocket hijacking: a page elsewhere opening the socket
    assert b" 403 " in handshake(
        server, f"/v1/ws?token={token}", "Origin: https://evil.example\r\n"
    )
    assert b" 403 " in handshake(server, "/v1/ws", "Origin: https://evil.example\r\n")
    # not a web page: Photoshop's plugins, native clients; the token decides
    for origin in ("null", "uxp://com.retouch.mlpanel", "file://"):
        assert b" 101 " in handshake(server, f"/v1/ws?token={token}", f"Origin: {origin}\r\n")
        assert b" 401 " in handshake(server, "/v1/ws", f"Origin: {origin}\r\n")
    own = f"Origin: http://127.0.0.1:{server.port}\r\n"
    assert b" 101 " in handshake(server, f"/v1/ws?token={token}", own)
    assert b" 101 " in handshake(server, "/v1/ws", f"Authorization: Bearer {token}\r\n")
    raw_ws.connect(server.port, token).close()


def test_the_token_is_compared_in_constant_time(server, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    http = server.http()
    assert http.request("GET", "/v1/jobs").status == 200
    assert http.request("GET", "/v1/jobs", headers={"Authorization": "Bearer x"}).status == 401
    assert calls == [(bytes, bytes), (bytes, bytes)]  # every check, right or wrong
