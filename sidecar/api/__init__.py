"""The HTTP/WebSocket API: the only room that imports aiohttp."""

from .app import AccessLogger, create_app

__all__ = ["AccessLogger", "create_app"]
