"""Reaching the cluster (or starting one here) and deciding how many workers it holds:
one per GPU, or one per `worker_cpus` CPUs where it has no GPU."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .address import ClusterAddress

INSTALL_HINT = (
    "--cluster needs ray, the cluster extra: pip install -e '.[cluster]' "
    "(scripts/bootstrap.py installs it wherever ray has wheels at its pin, not on Intel Macs)"
)
# Only paths and small answers travel through the object store (docs/scale.md): a
# local cluster gets a small one rather than Ray's default of 30 % of the memory.
LOCAL_OBJECT_STORE_BYTES = 128 << 20


class ClusterUnavailable(Exception):
    """No ray, or no cluster at the address: one line for the user, exit code 2."""


def need_ray() -> ModuleType:
    """The ray module, or ClusterUnavailable with how to install it."""
    if "ray" not in sys.modules:  # Ray reads its authentication mode when imported
        use_token_if_there()
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ClusterUnavailable(INSTALL_HINT) from exc


@dataclass(frozen=True)
class Placement:
    """How many workers, and what each one holds of the cluster."""

    workers: int
    cpus: float
    gpus: float
    nodes: int

    @property
    def per_worker(self) -> str:
        cpus = f"{self.cpus:g} CPU" + ("" if self.cpus == 1 else "s")
        return f"{self.gpus:g} GPU, {cpus}" if self.gpus else cpus


@contextlib.contextmanager
def open_cluster(address: ClusterAddress, worker_cpus: int = 1) -> Iterator[ModuleType]:
    """ray, connected for the run: to the cluster at `address`, or to a local one
    started now (and shut down after). A process already connected (a test, an
    embedding program) is used as it is and left connected."""
    ray = need_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address.local:
        assert address.local_workers is not None
        options.update(
            address="local",
            num_cpus=address.local_workers * worker_cpus,
            num_gpus=0,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        )
    else:
        options["address"] = address.address
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ClusterUnavailable(
            f"no Ray cluster found at {address} ({exc}); start one with `ray start --head`, "
            "or run with --cluster local[N]"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def use_token_if_there() -> None:
    """Use Ray's token authentication where this machine has a token, as `ray start`
    does: a cluster started with one refuses a driver without it, and Ray leaves a
    driver's RAY_AUTH_MODE unset (a local cluster turns it on anyway). The token
    itself is Ray's to read."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    given = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if given or (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def place(ray: ModuleType, address: ClusterAddress, worker_cpus: int, images: int) -> Placement:
    """One worker per GPU where the cluster has GPUs, else one per `worker_cpus` CPUs
    (`local[N]`: N), never more than there are images."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if address.local and address.local_workers is not None:
        workers, per_gpu = address.local_workers, 0
    elif gpus:
        workers, per_gpu = min(gpus, int(cpus // worker_cpus) or gpus), 1
    else:
        workers, per_gpu = int(cpus // worker_cpus), 0
    if workers < 1:
        raise ClusterUnavailable(
            f"the cluster has {cpus:g} CPUs and no GPU: not enough for one worker of "
            f"{worker_cpus} CPUs (--worker-cpus)"
        )
    return Placement(min(workers, max(images, 1)), float(worker_cpus), per_gpu, nodes)
