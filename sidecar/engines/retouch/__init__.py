"""The classical retouch engine (CPU, no weights): see `engine.RetouchEngine`."""

from .engine import RetouchEngine, RetouchResume

__all__ = ["RetouchEngine", "RetouchResume"]
