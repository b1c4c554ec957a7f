"""Who may talk to the sidecar: loopback host, allow-listed origins, the bearer token."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1:1", "file://"]
)
async def test_foreign_origin_is_refused(client, auth, origin):
    response = await client.get("/v1/health", headers={"Origin": origin})
    assert response.status == 403
    assert await error_code(response) == "forbidden_origin"
    response = await client.head("/v1/images/" + "0" * 64, headers={**auth, "Origin": origin})
    assert response.status == 403


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
