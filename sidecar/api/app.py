"""The aiohttp application factory. Handlers validate, hand work off and return."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..cache import ImageStore
from ..schema import EngineInfo, QueueCounts
from ..settings import Settings
from . import health, images
from .buffers import BufferPool
from .keys import BODY_BUFFERS, ENGINES, IMAGES, IMAGING_POOL, QUEUE_COUNTS, SETTINGS, TOKEN
from .middleware import error_middleware, security_middleware

JSON_BODY_LIMIT = 1024 * 1024  # JSON requests; image uploads stream under their own cap


def create_app(
    settings: Settings,
    *,
    token: str,
    images_store: ImageStore,
    engines: dict[str, EngineInfo] | None = None,
    queue_counts: Callable[[], QueueCounts] | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, security_middleware],
        client_max_size=JSON_BODY_LIMIT,
    )
    app[SETTINGS] = settings
    app[TOKEN] = token
    app[IMAGES] = images_store
    app[BODY_BUFFERS] = BufferPool()
    app[ENGINES] = engines or {}
    app[QUEUE_COUNTS] = queue_counts or QueueCounts
    app.cleanup_ctx.append(_imaging_pool)
    app.on_cleanup.append(_close_images)
    app.add_routes(health.routes)
    app.add_routes(images.routes)
    return app


async def _imaging_pool(app: web.Application) -> AsyncIterator[None]:
    # Decoding, hashing and disk writes release the GIL; two threads keep the event
    # loop free while bounding how many large images are in flight at once.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imaging")
    app[IMAGING_POOL] = pool
    yield
    pool.shutdown(wait=True, cancel_futures=True)


async def _close_images(app: web.Application) -> None:
    # Graceful shutdown: every image already answered 201 reaches the disk first.
    await asyncio.get_running_loop().run_in_executor(None, app[IMAGES].close)


class AccessLogger(AbstractAccessLogger):
    """Logs method, path (never the query, which may hold a token), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
