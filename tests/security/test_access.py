"""Who may talk to the sidecar: loopback host, allow-listed web origins, the bearer
token; and what a refusal leaves in the log."""

from __future__ import annotations

import asyncio
import logging
import stat

import pytest
from pydantic import ValidationError

from sidecar.cli import build_app
from sidecar.settings import Settings
from sidecar.token import load_or_create_token, token_matches


async def error_code(response) -> str:
    body = await response.json()
    return body["error"]["code"]


async def test_health_needs_no_token(client):
    response = await client.get("/v1/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["queue"] == {"queued": 0, "running": 0}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_routes_refuse_missing_or_wrong_token(client, headers):
    response = await client.head("/v1/images/" + "0" * 64, headers=headers)
    assert response.status == 401
    response = await client.post("/v1/images", data=b"x", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await error_code(response) == "unauthorized"


async def test_token_in_query_only_for_reads(client, token):
    response = await client.head("/v1/images/" + "0" * 64, params={"token": token})
    assert response.status == 404  # authorised: the image is simply not there
    response = await client.post(
        "/v1/images", params={"token": token}, data=b"x", headers={"Content-Type": "image/png"}
    )
    assert response.status == 401


async def test_foreign_host_is_refused_even_for_health(client):
    for host in ("evil.example:80", "127.0.0.1", "127.0.0.1:1", "attacker.localhost"):
        response = await client.get("/v1/health", headers={"Host": host})
        assert response.status == 403, host
        assert await error_code(response) == "forbidden_host"


async def test_localhost_name_is_accepted(client):
    port = client.server.port
    response = await client.get("/v1/health", headers={"Host": f"localhost:{port}"})
    assert response.status == 200


FOREIGN_WEB_ORIGINS = [
    "https://evil.example",
    "http://127.0.0.1:1",
    "HTTPS://evil.example",  # a scheme is the same in any case
    "http:evil.example",
    "https://localhost",
]
NON_WEB_ORIGINS = ["null", "uxp://com.retouch.mlpanel", "file://", "app://photoshop", ""]


@pytest.mark.parametrize("origin", FOREIGN_WEB_ORIGINS)
async def test_foreign_web_origin_is_refused_token_or_not(client, auth, token, origin):
    response = await client.get("/v1/health", headers={"Origin": origin})
    assert response.status == 403
    assert await error_code(response) == "forbidden_origin"
    response = await client.get("/v1/jobs", headers={**auth, "Origin": origin})
    assert response.status == 403
    assert await error_code(response) == "forbidden_origin"
    response = await client.get("/v1/jobs", params={"token": token}, headers={"Origin": origin})
    assert response.status == 403
    response = await client.head("/v1/images/" + "0" * 64, headers={**auth, "Origin": origin})
    assert response.status == 403


@pytest.mark.parametrize("origin", NON_WEB_ORIGINS)
async def test_non_web_origin_is_served_with_the_token(client, auth, token, origin):
    # Photoshop's UXP plugins send no web origin; only the token decides
    headers = {"Origin": origin}
    response = await client.get("/v1/jobs", headers={**auth, **headers})
    assert response.status == 200, await response.text()
    response = await client.get("/v1/jobs", params={"token": token}, headers=headers)
    assert response.status == 200
    response = await client.post("/v1/images", data=b"x", headers={**auth, **headers})
    assert response.status in (415, 422)  # past the gate: the body itself is wrong
    response = await client.get("/v1/jobs", headers=headers)
    assert response.status == 401
    assert await error_code(response) == "unauthorized"
    # public routes hold nothing of the user's: served as without an Origin
    assert (await client.get("/v1/health", headers=headers)).status == 200
    assert (await client.get("/v1/openapi.json", headers=headers)).status == 200


async def test_one_foreign_web_origin_among_several_is_refused(client, auth):
    port = client.server.port
    for origins in (["null", "https://evil.example"], [f"http://127.0.0.1:{port}", "http://x"]):
        headers = [("Authorization", auth["Authorization"])] + [("Origin", o) for o in origins]
        response = await client.get("/v1/jobs", headers=headers)
        assert response.status == 403, origins


async def test_a_non_web_origin_opens_the_websocket_with_the_token(client, token):
    headers = {"Origin": "uxp://com.retouch.mlpanel"}
    async with client.ws_connect(f"/v1/ws?token={token}", headers=headers) as ws:
        await ws.send_json({"type": "subscribe", "job_ids": []})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
    response = await client.get("/v1/ws", headers={"Origin": "null"})
    assert response.status == 401


async def test_own_origin_is_accepted(client):
    port = client.server.port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        response = await client.get("/v1/health", headers={"Origin": origin})
        assert response.status == 200


async def test_configured_origin_is_accepted(aiohttp_client, tmp_path):
    settings = Settings(
        cache_dir=tmp_path / "c",
        config_dir=tmp_path / "k",
        allowed_origins=["https://panel.example/"],
    )
    client = await aiohttp_client(build_app(settings))
    response = await client.get("/v1/health", headers={"Origin": "https://panel.example"})
    assert response.status == 200


def test_settings_refuse_wildcard_origins():
    for bad in ("*", "null", "ftp://x"):
        with pytest.raises(ValidationError):
            Settings(allowed_origins=[bad])


def test_settings_refuse_any_bind_address_but_loopback():
    for host in ("0.0.0.0", "::", "192.168.1.2", "localhost"):  # noqa: S104
        with pytest.raises(ValidationError):
            Settings(host=host)
    assert Settings().host == "127.0.0.1"


def test_token_is_random_private_and_stable(tmp_path):
    path = tmp_path / "config" / "token"
    first = load_or_create_token(path)
    assert len(first) >= 22 and first.isascii()  # ≥ 128 bits of url-safe base64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == first
    other = load_or_create_token(tmp_path / "elsewhere" / "token")
    assert other != first


def test_token_file_with_loose_mode_is_tightened(tmp_path):
    path = tmp_path / "token"
    token = load_or_create_token(path)
    path.chmod(0o644)
    assert load_or_create_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_compare():
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", None)
    assert not token_matches("abc", "")
    assert not token_matches("abc", "ä")  # non-ASCII input is a mismatch, not a crash


async def test_token_never_reaches_the_access_log(
    aiohttp_server, aiohttp_client, app, token, caplog
):
    from sidecar.api import AccessLogger

    server = await aiohttp_server(app, access_log_class=AccessLogger)
    client = await aiohttp_client(server)
    with caplog.at_level(logging.DEBUG):
        await client.head("/v1/images/" + "0" * 64, params={"token": token})
        await client.get("/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert "/v1/images/" in caplog.text
    assert token not in caplog.text


@pytest.fixture
async def served(aiohttp_server, aiohttp_client, app):
    """A client of the app served as `retouch-sidecar serve` serves it (its access log)."""
    from sidecar.api import AccessLogger

    return await aiohttp_client(await aiohttp_server(app, access_log_class=AccessLogger))


def refusal_lines(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sidecar.api.middleware" and r.levelno == logging.WARNING
    ]


async def test_refusals_are_logged_with_what_the_caller_sent_but_never_the_token(
    served, token, caplog
):
    port = served.server.port
    agent = "Photoshop/26.0 UXP/8.0"
    cases = [
        ("forbidden_origin", {"Origin": "https://evil.example"}, {"token": token}),
        (
            "forbidden_origin",
            {"Origin": "https://evil.example", "Authorization": f"Bearer {token}"},
            {},
        ),
        ("forbidden_host", {"Host": "evil.example", "Authorization": f"Bearer {token}"}, {}),
        ("unauthorized", {"Origin": "uxp://com.retouch.mlpanel"}, {"token": token[:-1]}),
        ("unauthorized", {"Origin": "null", "Authorization": f"Bearer {token[:-1]}"}, {}),
    ]
    for code, headers, query in cases:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            response = await served.get(
                "/v1/jobs", params=query, headers={"User-Agent": agent, **headers}
            )
            assert await error_code(response) == code
        lines = refusal_lines(caplog)
        assert len(lines) == 1, (code, caplog.text)
        line = lines[0]
        assert code in line and "GET" in line and "/v1/jobs" in line
        assert repr(headers.get("Origin", "")) in line or "Origin" not in headers
        assert repr(headers.get("Host", f"127.0.0.1:{port}")) in line
        assert "Photoshop/26.0 UXP/8.0" in line
        assert token not in caplog.text and token[:-1] not in caplog.text, code


async def test_a_refused_websocket_is_logged_without_its_query(served, token, caplog):
    with caplog.at_level(logging.WARNING):
        response = await served.get(
            "/v1/ws", params={"token": token}, headers={"Origin": "https://evil.example"}
        )
    assert response.status == 403
    [line] = refusal_lines(caplog)
    assert "forbidden_origin" in line and "'/v1/ws'" in line
    assert "https://evil.example" in line
    assert token not in caplog.text


async def test_logged_fields_are_escaped(served, caplog):
    # no client library sends control characters in a header: a bare socket does
    port = served.server.port
    request = (
        f"GET /v1/jobs%0Aforged%1B[31m HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Origin: uxp://panel\xe9\r\nUser-Agent: UXP\tx\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with caplog.at_level(logging.WARNING):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
    [line] = refusal_lines(caplog)
    assert not any(c in line for c in "\n\x1b\t\udce9"), line
    assert "forged" in line and "uxp://panel" in line and "UXP\\tx" in line


async def test_logged_fields_are_cut_short(served, caplog):
    with caplog.at_level(logging.WARNING):
        await served.get(
            "/v1/jobs", headers={"Origin": "uxp://" + "a" * 5000, "User-Agent": "b" * 5000}
        )
    [line] = refusal_lines(caplog)
    assert "unauthorized" in line and len(line) < 1000
