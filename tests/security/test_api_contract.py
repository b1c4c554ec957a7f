"""The OpenAPI document is built from the same models as the handlers, covers every
route, and a live sidecar answers schemathesis' generated requests as it says:
no 5xx (but the contract's engine_unavailable), every response as documented."""

from __future__ import annotations

import json

import pytest
from fuzzing import tally
from live_server import LiveServer
from schemathesis_run import run_schemathesis

from sidecar.api.openapi import openapi_document
from sidecar.api.openapi_routes import OPERATIONS


@pytest.fixture
def server(settings):
    with LiveServer(settings) as live:
        yield live


def test_every_json_route_is_in_the_document_and_nothing_else(app):
    routed = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" and ("GET", path) in routed:
            continue  # aiohttp answers HEAD for every GET route
        if path == "/panel" or path.startswith("/panel/"):
            continue  # the browser panel's static files, not part of the JSON API
        routed.add((route.method, path))
    routed = {(m, p) for m, p in routed if not (m == "HEAD" and ("GET", p) in routed)}
    described = {(op.method.upper(), op.path) for op in OPERATIONS}
    assert routed == described


async def test_the_document_is_served_without_a_token(client):
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    assert await response.json() == json.loads(json.dumps(openapi_document()))
    foreign = await client.get("/v1/openapi.json", headers={"Host": "evil.example"})
    assert foreign.status == 403  # public, but still only on loopback


def test_every_protected_operation_documents_401_and_every_one_403():
    for path, methods in openapi_document()["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert "403" in responses, (method, path)
            if operation.get("security") != []:
                assert "401" in responses, (method, path)
            assert not any(code.startswith("5") for code in responses if code != "503")


def failures(report: dict) -> str:
    return json.dumps(report["failures"], indent=1) + "\n" + report["output"][-8000:]


def test_schemathesis_finds_nothing_wrong_with_the_live_api(server, tmp_path):
    report = run_schemathesis(
        server.url, server.token, tmp_path / "st", max_examples=12, seed=7, timeout=240
    )
    tally("requests", report["test_cases"]["generated"])
    tally("schemathesis cases", report["test_cases"]["generated"])
    assert report["returncode"] == 0 and not report["failures"], failures(report)
    assert not report["errors"], report["output"][-4000:]
    tested = report["operations"]["tested"]
    # every operation but the document's own route, which schemathesis leaves out
    assert tested == report["operations"]["total"] == len(OPERATIONS) - 1
    assert report["test_cases"]["generated"] > 300


@pytest.mark.slow
def test_schemathesis_at_length(server, tmp_path):
    report = run_schemathesis(
        server.url, server.token, tmp_path / "st", max_examples=300, seed=None, timeout=1800
    )
    tally("requests", report["test_cases"]["generated"])
    tally("schemathesis cases", report["test_cases"]["generated"])
    assert report["returncode"] == 0 and not report["failures"], failures(report)
    assert not report["errors"], report["output"][-4000:]
