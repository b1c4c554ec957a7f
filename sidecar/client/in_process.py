"""`connect`: a client of the sidecar that is running, or of one started in this
process for as long as it is needed (`apply` and `batch`: models load once per command).

The in-process sidecar is served by `sidecar.api.protocol.JsonErrorRunner`, as `serve`
serves it, so its protocol errors are the same JSON answers; this module is the
client room's only door into the server room, and the app comes from the caller (the
composition root builds it), so nothing here wires a sidecar.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..settings import LOOPBACK
from .errors import SidecarError
from .http import SidecarClient

HEALTH_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_S = 10.0


async def _answers(client: SidecarClient) -> bool:
    """Whether a sidecar in good health answers on the client's port."""
    try:
        return (await client.health(HEALTH_TIMEOUT_S)).status == "ok"
    except SidecarError:
        return False


@contextlib.asynccontextmanager
async def connect(
    port: int, token: str, start_app: Callable[[], web.Application]
) -> AsyncIterator[tuple[SidecarClient, bool]]:
    """A client of the sidecar on 127.0.0.1:`port` if one answers (its token checked:
    `unauthorized` raises), else of `start_app()` served here on an ephemeral port and
    stopped on the way out. Yields the client and whether the sidecar is in-process."""
    async with SidecarClient.open(port, token) as client:
        if await _answers(client):
            await client.check_token()
            yield client, False
            return
        async with serve_in_process(start_app()) as bound:
            yield SidecarClient(client.session, bound, token), True


@contextlib.asynccontextmanager
async def serve_in_process(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 at an ephemeral port (yielded) until the block ends."""
    from ..api.protocol import JsonErrorRunner

    runner = JsonErrorRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
