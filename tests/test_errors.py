"""Every failure is a JSON error with a stable code; none is a traceback."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from sidecar import errors
from sidecar.api import create_app
from sidecar.cache import ImageStore
from sidecar.jobs import JobStore
from sidecar.schema import ErrorBody


async def test_unknown_route_is_json_not_found(client, auth):
    response = await client.get("/v1/nothing-here", headers=auth)
    assert response.status == 404
    body = ErrorBody.model_validate(await response.json())
    assert body.error.code == "not_found"


async def test_wrong_method_is_json(client, auth):
    response = await client.put("/v1/images", headers=auth, data=b"")
    assert response.status == 405
    body = ErrorBody.model_validate(await response.json())
    assert body.error.code == "method_not_allowed"


async def test_unexpected_exception_is_a_bare_internal_error(aiohttp_client, settings, caplog):
    app = create_app(
        settings,
        token="t" * 32,
        images_store=ImageStore(settings.images_dir),
        job_store=JobStore(settings.jobs_db),
    )

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail /home/user/path")

    app.router.add_get("/v1/broken", broken)
    client = await aiohttp_client(app)
    response = await client.get("/v1/broken", headers={"Authorization": "Bearer " + "t" * 32})
    assert response.status == 500
    text = await response.text()
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    assert ErrorBody.model_validate_json(text).error.code == "internal_error"
    assert "secret internal detail" in caplog.text  # logged for the user, not sent


def test_error_codes_are_unique_and_documented():
    codes = [kind.code for kind in errors.ALL_ERRORS]
    assert len(codes) == len(set(codes))
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    for kind in errors.ALL_ERRORS:
        assert f"| `{kind.code}` | {kind.status} |" in text, kind.code
