"""The two middlewares every request passes: errors (outermost) and security.

Errors: every failure becomes `{"error": {code, message, details}}` with a stable
code; unexpected exceptions are logged here and reach the client as a bare
`internal_error`, never a traceback.

Security: the Host header must name this server on loopback (DNS rebinding), an
Origin header must be allow-listed, and every route but the public ones needs the
bearer token (constant-time compare).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import errors
from ..token import token_matches
from .keys import SETTINGS, TOKEN
from .responses import error_response

log = logging.getLogger(__name__)

PUBLIC_ROUTES = frozenset(
    (method, path) for method in ("GET", "HEAD") for path in ("/v1/health", "/v1/openapi.json")
)

_HTTP_CODES: dict[int, type[errors.ApiError]] = {
    401: errors.Unauthorized,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.InvalidRequest,
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        response = error_response(exc)
        if not request.content.is_eof():
            # Refused before the body was read (too large, bad headers): close rather
            # than read and discard the rest of a possibly huge upload.
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = _HTTP_CODES.get(exc.status)
        if kind is None:
            kind = errors.InvalidRequest if exc.status < 500 else errors.InternalError
            error = kind(exc.reason or "request failed")
            error.status = exc.status
        else:
            error = kind(exc.reason or kind.code.replace("_", " "))
        response = error_response(error)
        if "Allow" in exc.headers:  # a 405 names the methods the route takes (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(errors.InternalError("internal error; see the sidecar log"))


def bound_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def allowed_hosts(port: int) -> frozenset[str]:
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})


def allowed_origins(port: int, extra: list[str]) -> frozenset[str]:
    return frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}", *extra})


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    port = bound_port(request)
    host = request.headers.get("Host", "").lower()
    if port is None or host not in allowed_hosts(port):
        raise errors.ForbiddenHost(
            "requests must address this server as 127.0.0.1 or localhost with its port"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin not in allowed_origins(
        port, request.app[SETTINGS].allowed_origins
    ):
        raise errors.ForbiddenOrigin("this origin may not call the sidecar")
    if not _is_public(request):
        if not token_matches(request.app[TOKEN], _presented_token(request)):
            raise errors.Unauthorized("missing or wrong token; see `retouch-sidecar token`")
    return await handler(request)


def _is_public(request: web.Request) -> bool:
    # The browser panel's static files hold no secrets; the page asks for the token.
    if request.method in ("GET", "HEAD") and (
        request.path == "/panel" or request.path.startswith("/panel/")
    ):
        return True
    return (request.method, request.path) in PUBLIC_ROUTES


def _presented_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # Clients that cannot set headers (WebSocket in UXP, EventSource, <img>) may only read.
    if request.method in ("GET", "HEAD"):
        return request.query.get("token")
    return None
