"""The two middlewares every request passes: errors (outermost) and security.

Errors: every failure becomes `{"error": {code, message, details}}` with a stable
code; unexpected exceptions are logged here and reach the client as a bare
`internal_error`, never a traceback.

Security: the Host header must name this server on loopback (DNS rebinding), a web
(http or https) Origin must be allow-listed, and every route but the public ones
needs the bearer token (constant-time compare).

Why a web Origin is checked and any other is not: the Origin check is there to stop
web pages. A browser sends an http(s) Origin on every cross-origin request and
WebSocket upgrade, so a page elsewhere is refused here whatever else it sends. The
token lives in no cookie and no page elsewhere can read it, so such a page could not
ride on it anyway. Callers that are not web pages send no Origin, the literal `null`
or a scheme of their own (Photoshop's UXP plugins: `uxp://...`, `file://`); they are
held to the token like everyone. Browsers also send `null` (sandboxed iframes, file:
pages): those still need the token, which they cannot have. Public routes hold
nothing of the user's, so there a non-web Origin is served as an absent one.

Every refusal is logged at WARNING with the request's method, path, Origin, Host and
User-Agent (never its query or Authorization header, which may hold the token), so a
user can report what their host application sends.
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

WEB_SCHEMES = frozenset({"http", "https"})
LOGGED_CHARS = 200  # of each request field a refusal log line quotes

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


def is_web_origin(origin: str) -> bool:
    """Whether a browser page could have sent this Origin: http or https (any case)."""
    scheme, colon, _ = origin.partition(":")
    return bool(colon) and scheme.strip().lower() in WEB_SCHEMES


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    port = bound_port(request)
    host = request.headers.get("Host", "").lower()
    if port is None or host not in allowed_hosts(port):
        raise _refused(
            request,
            errors.ForbiddenHost(
                "requests must address this server as 127.0.0.1 or localhost with its port"
            ),
        )
    allowed = allowed_origins(port, request.app[SETTINGS].allowed_origins)
    # Every Origin header counts, should a client send more than one.
    for origin in request.headers.getall("Origin", ()):
        if is_web_origin(origin) and origin not in allowed:
            raise _refused(request, errors.ForbiddenOrigin("this origin may not call the sidecar"))
    if not _is_public(request):
        if not token_matches(request.app[TOKEN], _presented_token(request)):
            raise _refused(
                request, errors.Unauthorized("missing or wrong token; see `retouch-sidecar token`")
            )
    return await handler(request)


def _refused(request: web.Request, error: errors.ApiError) -> errors.ApiError:
    """Log a refusal with what the caller sent about itself, and hand the error back.
    Neither the query nor the Authorization header is logged (either may hold the
    token), and the token is masked should a client put it anywhere else."""
    token = request.app[TOKEN]

    def header(name: str) -> str:
        values = request.headers.getall(name, ())
        return ", ".join(_loggable(v, token) for v in values[:2]) if values else "-"

    log.warning(
        "refused %s %s: %s %s origin=%s host=%s user-agent=%s",
        error.status,
        error.code,
        _loggable(request.method, token),
        _loggable(request.path, token),
        header("Origin"),
        header("Host"),
        header("User-Agent"),
    )
    return error


def _loggable(text: str, token: str) -> str:
    """`text` cut to LOGGED_CHARS characters and quoted, control characters escaped."""
    cut = text.replace(token, "<token>")[:LOGGED_CHARS] if token else text[:LOGGED_CHARS]
    return repr(cut) + ("..." if len(text) > LOGGED_CHARS else "")


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
