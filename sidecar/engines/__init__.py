"""The operations. `base` is the contract every engine meets (no torch here)."""

from .base import Cancelled, Engine, JobContext, Preempted, RunInput

__all__ = ["Cancelled", "Engine", "JobContext", "Preempted", "RunInput"]
