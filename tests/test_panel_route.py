"""The browser panel at /panel/: static files without the token, locked down by
headers, no way out of plugin/; and raw previews for the draft layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from jobs_support import submit, upload, wait_for

from sidecar.api.panel import PLUGIN_DIR, bundle
from sidecar.cli import build_app


@pytest.fixture
def app(settings):
    return build_app(settings, engines=["synthetic"])


async def test_the_page_and_its_files_need_no_token_and_carry_a_strict_policy(client):
    page = await client.get("/panel/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy and page.headers["X-Frame-Options"] == "DENY"
    for path in ("/panel/loader.js", "/panel/modules.js", "/panel/panel.css"):
        response = await client.get(path)
        assert response.status == 200, path
    sample = await client.get("/panel/sample-portrait.jpg")
    assert sample.status == 200 and (await sample.read())[:3] == b"\xff\xd8\xff"
    moved = await client.get("/panel", allow_redirects=False)
    assert moved.status == 302 and moved.headers["Location"] == "/panel/"


async def test_the_api_still_needs_the_token(client):
    response = await client.get("/v1/jobs")
    assert response.status == 401


async def test_a_foreign_host_gets_no_panel(client):
    response = await client.get("/panel/", headers={"Host": "evil.example:7431"})
    assert response.status == 403


@pytest.mark.parametrize(
    "path",
    [
        "/panel/browser/..%2F..%2Fsidecar%2Fcli.py",
        "/panel/browser/%2e%2e/%2e%2e/pyproject.css",
        "/panel/..%2Fpyproject.css",
        "/panel/icons/.hidden.png",
        "/panel/photoshop-adapter.js",
        "/panel/browser/start.js",
        "/panel/panel.exe",
    ],
)
async def test_nothing_outside_the_panel_files_is_served(client, path):
    response = await client.get(path)
    # 404 from the panel's routes; 401 when the path was normalised out of /panel/
    assert response.status in (401, 404), path
    assert (await response.json())["error"]["code"] in {"not_found", "unauthorized"}


def test_the_bundle_wraps_each_module_and_leaves_the_photoshop_side_out():
    text = bundle()
    names = [line.split('"')[1] for line in text.splitlines() if line.startswith("define(")]
    assert "ui.js" in names and "panel-state.js" in names and "browser/start.js" in names
    assert "photoshop-adapter.js" not in names and "main.js" not in names
    assert text.rstrip().endswith('require("browser/start.js");')
    for name in names:  # each module's source is inside, whole
        assert (PLUGIN_DIR / name).read_text(encoding="utf-8") in text


async def test_a_preview_comes_raw_for_the_draft_layer(client, auth):
    rng = np.random.default_rng(3)
    image_id = await upload(client, auth, rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    job_id = await submit(client, auth, image_id, steps=3, step_ms=5, params={"preview_side": 48})
    await wait_for(client, auth, job_id)
    events = await client.get(f"/v1/jobs/{job_id}/events", headers=auth)
    text = await events.text()
    previews = [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and '"preview"' in line
    ]
    seq = previews[-1]["seq"]
    raw = await client.get(f"/v1/jobs/{job_id}/previews/{seq}?format=raw", headers=auth)
    assert raw.status == 200
    width, height = int(raw.headers["X-Image-Width"]), int(raw.headers["X-Image-Height"])
    assert (raw.headers["X-Image-Channels"], raw.headers["X-Image-Depth"]) == ("3", "8")
    assert max(width, height) == 48
    assert len(await raw.read()) == width * height * 3
    bad = await client.get(f"/v1/jobs/{job_id}/previews/{seq}?format=gif", headers=auth)
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "invalid_request"
