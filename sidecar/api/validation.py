"""Parsing request bodies and queries into the contract's pydantic models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


def _invalid(exc: ValidationError, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"invalid {what}",
        details={
            "errors": exc.errors(include_url=False, include_input=False, include_context=False)
        },
    )


async def json_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            "send JSON with Content-Type: application/json",
            details={"accepted": ["application/json"]},
        )
    raw = await request.read()  # capped by the app's client_max_size (413 beyond it)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc, "request body") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest("the body is not JSON") from exc


def query(params: Mapping[str, str], model: type[M]) -> M:
    # `token` authenticates GET requests that cannot send a header; it is no option
    options = {name: value for name, value in params.items() if name != "token"}
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise _invalid(exc, "query") from exc
