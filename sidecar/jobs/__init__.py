"""The priority queue, the single worker that owns the GPU, events and persistence."""

from .eta import EtaModel
from .events import EventBus, Published, Subscription
from .model import Job
from .scheduler import Scheduler, derive_seed
from .store import JobStore

__all__ = [
    "EtaModel",
    "EventBus",
    "Job",
    "JobStore",
    "Published",
    "Scheduler",
    "Subscription",
    "derive_seed",
]
