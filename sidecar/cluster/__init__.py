"""`batch --cluster`: a shoot on a Ray cluster, one worker (a Ray actor holding one
engine) per GPU or per N CPUs, on any number of machines that see the same folder.

Inputs and outputs travel as file paths on that shared folder, never as pixels through
Ray's object store; each worker decodes, retouches, encodes and writes as the sidecar
and the single-machine batch do, so an output has the same bits whichever way it was
made (docs/scale.md).

- address.py: the `--cluster` value (auto, local[N], HOST:PORT)
- connect.py: ray imported (or how to install it), the cluster reached or started here,
  how many workers
- items.py: what travels (paths, never pixels); work.py: one image's job on a worker
  (no ray); claims.py: each output written once
- schedule.py: which image next, heroes first, the color prior, images sent again
  when their worker died (no ray)
- pool.py, dispatch.py: the actors and the driver's loop; events.py: what it reports
- run.py: `run_shoot`, which `sidecar.batch` calls

ray is imported in this room only (an import-linter contract), and only once a shoot
asks for a cluster: the modules that import it are loaded by `run_shoot`.
"""

from .address import ClusterAddress, parse_address
from .connect import INSTALL_HINT, ClusterUnavailable, need_ray
from .events import Ended, Event, Placed, Resent, Sent, WorkerDown, WorkerUp
from .items import Done, FileIO, Item, Order, Setup
from .run import run_shoot
from .schedule import MAX_ATTEMPTS, Prior, Schedule

__all__ = [
    "INSTALL_HINT",
    "MAX_ATTEMPTS",
    "ClusterAddress",
    "ClusterUnavailable",
    "Done",
    "Ended",
    "Event",
    "FileIO",
    "Item",
    "Order",
    "Placed",
    "Prior",
    "Resent",
    "Schedule",
    "Sent",
    "Setup",
    "WorkerDown",
    "WorkerUp",
    "need_ray",
    "parse_address",
    "run_shoot",
]
