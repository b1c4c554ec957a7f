"""The classical retouch engine (CPU, no weights): see `engine.RetouchEngine`."""

from .engine import RetouchEngine

__all__ = ["RetouchEngine"]
