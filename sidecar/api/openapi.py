"""The OpenAPI 3.1 document of the HTTP API, built from the route table and the same
pydantic models the handlers validate with; served at GET /v1/openapi.json (public:
it describes the API and holds nothing of the user's) and committed as
shared-schema/openapi.json (a test fails when it drifts)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .. import __version__
from ..errors import ALL_ERRORS
from ..schema import ClientMessage, ErrorBody, JobEvent, PreviewHeader
from .openapi_routes import BINARY, OPERATIONS, PATH_PARAMETERS, Link, Operation, Reply

REF_TEMPLATE = "#/components/schemas/{model}"
FILE_NAME = "openapi.json"
# schemas the HTTP routes do not name but clients of the event streams need
EXTRA_SCHEMAS: dict[str, Any] = {
    "JobEvent": JobEvent,
    "ClientMessage": ClientMessage,
    "PreviewHeader": PreviewHeader,
}

# One Server-Sent Event (OpenAPI 3.1: the schema of a text/event-stream is each event's):
# `id` is the event's seq, `data` one JobEvent as JSON.
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": REF_TEMPLATE.format(model="JobEvent")},
        },
    },
}

routes = web.RouteTableDef()


class _Components:
    """Collects model schemas under #/components/schemas, refusing name clashes."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def add(self, name: str, target: Any, mode: str = "validation") -> dict[str, str]:
        schema = TypeAdapter(target).json_schema(mode=mode, ref_template=REF_TEMPLATE)
        for sub_name, sub in schema.pop("$defs", {}).items():
            self._put(sub_name, sub)
        self._put(name, schema)
        return {"$ref": REF_TEMPLATE.format(model=name)}

    def model(self, model: type[BaseModel], mode: str = "validation") -> dict[str, str]:
        return self.add(model.__name__, model, mode)

    def _put(self, name: str, schema: Any) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")


def _statuses() -> dict[int, list[str]]:
    codes: dict[int, list[str]] = {}
    for kind in ALL_ERRORS:
        codes.setdefault(kind.status, []).append(kind.code)
    codes.setdefault(400, []).append("invalid_request")
    return codes


def _error_reply(status: int, codes: dict[int, list[str]]) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "description": "Error: " + ", ".join(codes.get(status, ["see the code"])),
        "content": {
            "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorBody")}}
        },
    }
    if status == 401:
        reply["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    return reply


def _reply(reply: Reply, components: _Components) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description or "OK"}
    if reply.model is not None:
        schema = components.model(reply.model, "serialization")
        out["content"] = {"application/json": {"schema": schema}}
    elif reply.media:
        out["content"] = {
            media: {"schema": SSE_EVENT if media == "text/event-stream" else BINARY}
            for media in reply.media
        }
    if reply.links:
        out["links"] = {name: _link(link) for name, link in reply.links.items()}
    if reply.headers:
        out["headers"] = {
            name: {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}
            for name in reply.headers
        }
    return out


def operation_id(method: str, path: str) -> str:
    return f"{method}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}"


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id(link.method, link.path)}
    if link.parameters:
        out["parameters"] = link.parameters
    if link.body is not None:
        out["requestBody"] = link.body
    return out


def _fields(model: type[BaseModel], components: _Components) -> list[tuple[str, dict, bool]]:
    """(name, schema, required) of each field of a query or header model."""
    schema = TypeAdapter(model).json_schema(ref_template=REF_TEMPLATE)
    for sub_name, sub in schema.pop("$defs", {}).items():
        components._put(sub_name, sub)
    required = set(schema.get("required", []))
    return [(name, prop, name in required) for name, prop in schema["properties"].items()]


def _operation(op: Operation, components: _Components, codes: dict[int, list[str]]) -> dict:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        for name, schema, required in _fields(op.query, components):
            parameters.append({"name": name, "in": "query", "required": required, "schema": schema})
    if op.headers is not None:
        for name, schema, _ in _fields(op.headers, components):
            header = op.header_names[name]
            parameters.append({"name": header, "in": "header", "required": False, "schema": schema})
    doc: dict[str, Any] = {
        "operationId": operation_id(op.method, op.path),
        "summary": op.summary,
    }
    if op.description:
        doc["description"] = op.description
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.model(op.body)}},
        }
    elif op.body_media:
        doc["requestBody"] = {
            "required": True,
            "content": {media: {"schema": BINARY} for media in op.body_media},
        }
    responses = {str(status): _reply(reply, components) for status, reply in op.replies.items()}
    statuses = {*op.errors, 403} | (set() if op.public else {401})
    for status in sorted(statuses):
        responses[str(status)] = _error_reply(status, codes)
    doc["responses"] = dict(sorted(responses.items()))
    if op.public:
        doc["security"] = []
    return doc


def openapi_document() -> dict[str, Any]:
    components = _Components()
    components.model(ErrorBody, "serialization")
    for name, target in EXTRA_SCHEMAS.items():
        components.add(name, target, "serialization")
    codes = _statuses()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components, codes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "retouch sidecar",
            "version": __version__,
            "description": "The local sidecar's HTTP API (v1). Binds 127.0.0.1 only; every "
            "route but the public ones needs `Authorization: Bearer <token>` (GET and HEAD "
            "may send `?token=` instead). Errors are ErrorBody with a stable code.",
        },
        "servers": [{"url": "http://127.0.0.1:7431"}],
        "security": [{"bearer": []}, {"query_token": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


def render_openapi() -> str:
    """The document's text exactly as committed in shared-schema/."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def write_openapi(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(render_openapi(), encoding="utf-8")
    tmp.replace(path)
    return path


@functools.cache
def _served() -> bytes:
    return render_openapi().encode()  # the routes and models never change in a process


@routes.get("/v1/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_served(), content_type="application/json")
