"""Typed application state (no module-level singletons)."""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from ..cache import ImageStore
from ..engines import Engine
from ..imaging.buffers import BufferPool
from ..jobs import EventBus, JobStore, Scheduler
from ..jobs.predict import ActionPredictor
from ..jobs.remake import Remakes
from ..schema import Op
from ..settings import Settings

SETTINGS = web.AppKey("settings", Settings)
TOKEN = web.AppKey("token", str)
IMAGES = web.AppKey("images", ImageStore)
BODY_BUFFERS = web.AppKey("body_buffers", BufferPool)
IMAGING_POOL = web.AppKey("imaging_pool", ThreadPoolExecutor)
ENGINES = web.AppKey("engines", dict[Op, Engine])
JOB_STORE = web.AppKey("job_store", JobStore)
SCHEDULER = web.AppKey("scheduler", Scheduler)
REMAKES = web.AppKey("remakes", Remakes)  # results the store's limit removed, made again
BUS = web.AppKey("bus", EventBus)
PREDICTOR = web.AppKey("predictor", ActionPredictor)
# one skin-tone computation at a time in the imaging pool (images.SKIN_TONE_AT_ONCE)
SKIN_TONE_GATE = web.AppKey("skin_tone_gate", asyncio.Semaphore)
# open WebSockets and the connection under each (to cut off a client that stops reading)
SOCKETS = web.AppKey(
    "sockets", weakref.WeakKeyDictionary[web.WebSocketResponse, asyncio.BaseTransport | None]
)
