"""Errors aiohttp answers itself, before any middleware runs, as the sidecar's JSON body.

A request aiohttp cannot parse (a bad request line, a header without a colon, a
header or request line over 8190 bytes, broken chunked encoding, a bad
Content-Length) never reaches the app: aiohttp's `RequestHandler.handle_error`
answers it in plain text, quoting the offending bytes, which may hold the token
(`Authorization Bearer <token>` without its colon is quoted whole), and logs them
with a traceback. Here the same refusals get `{"error": {code, message, details}}`:
`headers_too_large` (431) for an over-long line, `bad_request` (400) for the rest,
`internal_error` (500) should a crash ever get past the error middleware. Messages
are fixed texts: nothing the client sent is echoed or logged.

aiohttp (3.14) offers no public hook for this (aio-libs/aiohttp#3287), so
`JsonErrorRunner`, a drop-in `web.AppRunner` (for `serve` and for anything else
that serves the app in-process), overrides `RequestHandler.handle_error`: the
`web.Server` and the per-connection `RequestHandler` aiohttp builds get their class
swapped for subclasses that add no state, only this method. Its one non-public name
is `AppRunner._make_server`, through which a runner builds its `web.Server`;
`hooked()` checks it and `handle_error`'s signature, and where either has changed
the runner serves with aiohttp's own handler, plain-text errors included, instead
of failing (a test says so). `run_app` is `web.run_app` for one host and port with
this runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from .. import errors
from .responses import error_response

log = logging.getLogger(__name__)

HANDLE_ERROR_PARAMS = ("self", "request", "status", "exc", "message")


def protocol_error(status: int, exc: BaseException | None) -> errors.ApiError:
    """The error the client gets for what aiohttp refused with `status` and `exc`."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        return errors.HeadersTooLarge(
            "a header or the request line is longer than the server accepts",
            details={"max_bytes": limit} if isinstance(limit, int) else None,
        )
    if status < 500:
        error = errors.ApiError(
            "malformed HTTP request: its request line, a header or the body's framing "
            "(Content-Length, chunked encoding) could not be parsed"
        )
        error.status = status  # 400 from aiohttp 3.14
        return error
    return errors.InternalError("internal error; see the sidecar log")


class JsonErrorHandler(web.RequestHandler):
    """aiohttp's connection handler; its error answers are the sidecar's JSON."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # aiohttp's text, which may quote the token: unused
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("response already sent, cannot send the error")
        error = protocol_error(status, exc)
        if error.status >= 500:
            log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
        else:
            log.warning(
                "refused malformed request from %s: %s %s (%s)",
                request.remote,
                error.status,
                error.code,
                type(exc).__name__,
            )
        response = error_response(error)
        response.force_close()
        return response


def hooked() -> bool:
    """Whether this aiohttp still builds its server and answers errors as 3.14 does."""
    try:
        params = tuple(inspect.signature(web.RequestHandler.handle_error).parameters)
    except (AttributeError, TypeError, ValueError):
        return False
    return params == HANDLE_ERROR_PARAMS and callable(getattr(web.AppRunner, "_make_server", None))


HOOKED = hooked()


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        handler = super().__call__()
        if type(handler) is web.RequestHandler:
            handler.__class__ = JsonErrorHandler  # same slots: only handle_error differs
        return handler


class JsonErrorRunner(web.AppRunner):
    """`web.AppRunner`, its protocol errors answered by `JsonErrorHandler`."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        if HOOKED and type(server) is web.Server:
            server.__class__ = _JsonErrorServer
        return server


def run_app(app: web.Application, *, host: str, port: int, **runner_args: Any) -> None:
    """`web.run_app(app, host=host, port=port, print=None, **runner_args)`, served by
    a `JsonErrorRunner`, with run_app's defaults (signals handled, 75 s keep-alive):
    SIGINT and SIGTERM stop it after the app's cleanup; an OSError from binding the
    port is raised."""
    runner_args = {"handle_signals": True, "keepalive_timeout": 75.0, **runner_args}
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, host, port, runner_args))


async def _serve(app: web.Application, host: str, port: int, runner_args: dict) -> None:
    runner = JsonErrorRunner(app, **runner_args)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()  # until a signal, or Ctrl+C
    finally:
        await runner.cleanup()
