"""The priority queue, the single worker that owns the GPU, events and persistence."""

from .eta import EtaModel
from .events import EventBus, Published, Subscription
from .model import Job
from .results import derive_seed
from .scheduler import Scheduler
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
