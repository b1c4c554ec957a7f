"""A shoot on a Ray cluster, from the driver: reach the cluster (or start one here),
start the workers, send every image, and stop cleanly however it ends."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from .address import ClusterAddress
from .claims import clear_leftovers
from .connect import open_cluster, place
from .events import Event, Placed
from .items import Item, Setup
from .schedule import Prior, Schedule


def run_shoot(
    items: list[Item],
    setup: Setup,
    address: ClusterAddress,
    *,
    worker_cpus: int = 1,
    prior: Prior | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
) -> None:
    """Every item done once on the cluster; each end is told as an `Ended` event. On
    any exit (Ctrl-C included) the workers are killed before this returns or raises,
    the run's claims and temps are removed, and a local cluster is shut down."""
    with open_cluster(address, worker_cpus) as ray:
        # imported once ray is known to be there (connect.need_ray)
        from .dispatch import Dispatcher
        from .pool import start_workers, stop_workers

        placement = place(ray, address, worker_cpus, len(items))
        on_event(Placed(str(address), placement.workers, placement.per_worker, placement.nodes))
        schedule = Schedule(items, secrets.token_hex(6), prior)
        slots = start_workers(placement, setup)
        dispatcher = Dispatcher(slots, schedule, on_event)
        try:
            dispatcher.run()
        finally:
            stop_workers(slots, dispatcher.outstanding)
            clear_leftovers(item.target for item in items)
