"""GET /v1/health: public, so a panel can tell 'not running' from 'wrong token'."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..schema import EngineInfo, Health, QueueCounts, StoreUsage
from .keys import ENGINES, IMAGES, SCHEDULER, SETTINGS
from .responses import model_response

routes = web.RouteTableDef()


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    app = request.app
    engines: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for op, engine in app[ENGINES].items():
        engines.setdefault(engine.name, []).append(op.value)
        describe = engine.describe
        if describe is not None:  # e.g. which model and LoRAs are loaded
            described[engine.name] = describe() + "; "
    queued, running = app[SCHEDULER].counts()
    used, images = app[IMAGES].usage()
    body = Health(
        status="ok",
        version=__version__,
        device=app[SETTINGS].device,
        engines={
            name: EngineInfo(
                available=True, detail=described.get(name, "") + "ops: " + ", ".join(sorted(ops))
            )
            for name, ops in engines.items()
        },
        queue=QueueCounts(queued=queued, running=running),
        store=StoreUsage(used_bytes=used, limit_bytes=app[IMAGES].max_bytes, images=images),
    )
    return model_response(body)
