"""GET /v1/health: public, so a panel can tell 'not running' from 'wrong token'."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..schema import Health
from .keys import ENGINES, QUEUE_COUNTS, SETTINGS
from .responses import model_response

routes = web.RouteTableDef()


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    app = request.app
    body = Health(
        status="ok",
        version=__version__,
        device=app[SETTINGS].device,
        engines=app[ENGINES],
        queue=app[QUEUE_COUNTS](),
    )
    return model_response(body)
