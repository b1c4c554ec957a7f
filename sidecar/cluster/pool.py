"""The workers: one Ray actor each, holding one engine, loaded once, for every image it
is given; and what the driver knows of each (`Slot`)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import ray

from .connect import Placement
from .items import Done, Order, Setup
from .work import Retoucher

# Restarts of one worker (its process, or on another node) before it is given up; an
# image is sent again at most `schedule.MAX_ATTEMPTS` times whatever the restarts.
MAX_RESTARTS = 4
STOP_WAIT_S = 15.0  # for killed workers' calls to end before their temps are cleared


class Worker:
    """The actor: its engine is made when it starts (again after a restart)."""

    def __init__(self, setup: Setup) -> None:
        self._retoucher = Retoucher(setup)

    def ready(self) -> tuple[str, int]:
        """The node's address and this process's id, once the engine is made."""
        return ray.util.get_node_ip_address(), os.getpid()

    def do(self, order: Order) -> Done:
        return self._retoucher.do(order)


RemoteWorker = ray.remote(Worker)


@dataclass
class Slot:
    """One worker as the driver sees it."""

    number: int  # 1, 2, … in the display
    handle: Any
    state: str = "starting"  # starting | idle | busy | recovering | gone
    node: str = ""
    pid: int = 0
    order: Order | None = None  # the image it is on, while busy


def start_workers(placement: Placement, setup: Setup) -> list[Slot]:
    """The actors, spread over the nodes; Ray restarts one whose process or node dies
    (with its engine made again), and no call is retried by Ray: the driver sends a
    lost image again itself (`schedule.Schedule.lost`)."""
    actor = RemoteWorker.options(
        num_cpus=placement.cpus,
        num_gpus=placement.gpus,
        max_restarts=MAX_RESTARTS,
        max_task_retries=0,
        scheduling_strategy="SPREAD",
    )
    return [Slot(number, actor.remote(setup)) for number in range(1, placement.workers + 1)]


def stop_workers(slots: list[Slot], calls: list) -> None:
    """Kill every worker (no restart) and wait for the calls still out to end, so that
    no worker writes after this returns."""
    for slot in slots:
        if slot.state != "gone":
            ray.kill(slot.handle, no_restart=True)
            slot.state = "gone"
    deadline = time.monotonic() + STOP_WAIT_S
    if calls:
        ray.wait(calls, num_returns=len(calls), timeout=STOP_WAIT_S)
    # A call ends (the actor is marked dead) before its process is gone, and that
    # process may still be writing: wait for the processes on this machine too.
    here = ray.util.get_node_ip_address()
    for slot in slots:
        if slot.pid and slot.node == here:
            _wait_gone(slot.pid, deadline)


def _wait_gone(pid: int, deadline: float) -> None:
    """Until process `pid` has exited, or `deadline`. POSIX only: on Windows a killed
    worker process stops at once (TerminateProcess), and signal 0 would kill it."""
    if sys.platform == "win32":
        return
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # another user's process took the number: ours is gone
            return
        time.sleep(0.02)  # a poll: another process's exit gives this one no signal
