"""JSON responses built from the pydantic models of the contract."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from ..errors import ApiError
from ..schema import ErrorBody, ErrorDetail


def model_response(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def error_response(error: ApiError) -> web.Response:
    body = ErrorBody(
        error=ErrorDetail(code=error.code, message=error.message, details=error.details)
    )
    response = model_response(body, status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="retouch-sidecar"'
    return response
