"""Typed application state (no module-level singletons)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from ..cache import ImageStore
from ..schema import EngineInfo, QueueCounts
from ..settings import Settings
from .buffers import BufferPool

SETTINGS = web.AppKey("settings", Settings)
TOKEN = web.AppKey("token", str)
IMAGES = web.AppKey("images", ImageStore)
BODY_BUFFERS = web.AppKey("body_buffers", BufferPool)
IMAGING_POOL = web.AppKey("imaging_pool", ThreadPoolExecutor)
ENGINES = web.AppKey("engines", dict[str, EngineInfo])
QUEUE_COUNTS = web.AppKey("queue_counts", Callable[[], QueueCounts])
