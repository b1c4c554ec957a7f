"""The aiohttp application factory. Handlers validate, hand work off and return."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from aiohttp import WSCloseCode, web
from aiohttp.abc import AbstractAccessLogger

from ..cache import ImageStore
from ..engines import Engine
from ..jobs import EventBus, JobStore, Scheduler
from ..jobs.predict import ActionPredictor
from ..jobs.remake import Remakes
from ..schema import TERMINAL_STATES, Op
from ..settings import Settings
from . import actions, health, images, jobs, openapi, panel, precompute, stream
from .keys import (
    BODY_BUFFERS,
    BUS,
    ENGINES,
    IMAGES,
    IMAGING_POOL,
    JOB_STORE,
    PREDICTOR,
    REMAKES,
    SCHEDULER,
    SETTINGS,
    SKIN_TONE_GATE,
    SOCKETS,
    TOKEN,
)
from .middleware import error_middleware, security_middleware

JSON_BODY_LIMIT = 1024 * 1024  # JSON requests; image uploads stream under their own cap


def create_app(
    settings: Settings,
    *,
    token: str,
    images_store: ImageStore,
    job_store: JobStore,
    engines: dict[Op, Engine] | None = None,
    warm_engines: bool = False,
) -> web.Application:
    """The sidecar's application; with `warm_engines` (the program's own sidecar), the
    worker makes the engines' graphs before its first job (`Engine.warm`)."""
    app = web.Application(
        middlewares=[error_middleware, security_middleware],
        client_max_size=JSON_BODY_LIMIT,
    )
    app[SETTINGS] = settings
    app[TOKEN] = token
    app[IMAGES] = images_store
    app[BODY_BUFFERS] = images_store.buffers  # one pool: uploads, inputs, results
    app[ENGINES] = engines or {}
    app[JOB_STORE] = job_store
    app[PREDICTOR] = ActionPredictor(settings.data_dir / "actions.json")
    app[SOCKETS] = weakref.WeakKeyDictionary()
    app[SKIN_TONE_GATE] = asyncio.Semaphore(images.SKIN_TONE_AT_ONCE)
    app.cleanup_ctx.append(_imaging_pool)
    app.cleanup_ctx.append(partial(_scheduler, warm=warm_engines))
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_close_images)
    app.on_cleanup.append(_close_predictor)
    for module in (actions, health, images, jobs, openapi, panel, precompute, stream):
        app.add_routes(module.routes)
    return app


async def _imaging_pool(app: web.Application) -> AsyncIterator[None]:
    # Decoding, hashing and disk writes release the GIL; two threads keep the event
    # loop free while bounding how many large images are in flight at once.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imaging")
    app[IMAGING_POOL] = pool
    yield
    pool.shutdown(wait=True, cancel_futures=True)


async def _scheduler(app: web.Application, *, warm: bool) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    bus = EventBus(loop)
    scheduler = Scheduler(
        images=app[IMAGES], engines=app[ENGINES], store=app[JOB_STORE], bus=bus, warm=warm
    )
    app[IMAGES].set_in_use(partial(_job_inputs, scheduler))  # never evicted for the limit
    app[BUS] = bus
    app[SCHEDULER] = scheduler
    app[REMAKES] = Remakes(scheduler)
    await loop.run_in_executor(None, scheduler.start)
    yield
    bus.close_all()
    # The running job stops at its next step boundary and stays queued on disk.
    await loop.run_in_executor(None, scheduler.stop)


def _job_inputs(scheduler: Scheduler) -> set[str | None]:
    """The images of queued and running jobs (called by the image store's writer)."""
    if not scheduler.lock.acquire(timeout=5):  # never block the writer for long
        raise TimeoutError("the scheduler is busy")
    try:
        return {
            job.request.image_id
            for job in scheduler.jobs.values()
            if job.state not in TERMINAL_STATES
        }
    finally:
        scheduler.lock.release()


async def _close_sockets(app: web.Application) -> None:
    # all at once, each bounded: a client that stopped reading cannot hold up shutdown
    await asyncio.gather(
        *(
            stream.close_socket(ws, transport, WSCloseCode.GOING_AWAY, b"sidecar shutting down")
            for ws, transport in list(app[SOCKETS].items())
        )
    )


async def _close_predictor(app: web.Application) -> None:
    await asyncio.get_running_loop().run_in_executor(None, app[PREDICTOR].close)


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
