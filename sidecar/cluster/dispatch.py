"""The driver's loop: each free worker gets the next image (one at a time, so a fast
worker takes more), each answer ends an image, and an image whose worker died goes to
the next free worker. Only paths and small answers travel (`work.Order`, `work.Done`):
the pixels are read and written by the workers on the shared folder."""

from __future__ import annotations

import time
from collections.abc import Callable

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayError, RayTaskError

from .events import Ended, Event, Resent, Sent, WorkerDown, WorkerUp
from .items import Done, Order
from .pool import Slot
from .schedule import Schedule

TICK_S = 0.25  # how often the loop looks up from waiting (Ctrl-C, the display)
# How long the shoot waits with no worker able to take an image (all starting or
# restarting, e.g. their node is gone and no other has room) before the rest fails.
NO_WORKER_S = 300.0


class Dispatcher:
    def __init__(
        self, slots: list[Slot], schedule: Schedule, on_event: Callable[[Event], None]
    ) -> None:
        self.slots = slots
        self.schedule = schedule
        self.on_event = on_event
        self.calls: dict = {}  # object ref → (slot, "ready" | "do")

    def run(self) -> None:
        """Until every image has ended (or no worker is left)."""
        for slot in self.slots:
            self._probe(slot)
        stalled_since = None
        while not self.schedule.complete:
            self._send()
            working = any(slot.state in ("idle", "busy") for slot in self.slots)
            if working or not self.calls:
                stalled_since = None
            elif stalled_since is None:
                stalled_since = time.monotonic()
            if not self.calls or (stalled_since and time.monotonic() - stalled_since > NO_WORKER_S):
                message = "no worker is left" if not self.calls else "no worker came back"
                self._end_all("no_workers", f"{message} to do it")
                return
            ready, _ = ray.wait(list(self.calls), num_returns=1, timeout=TICK_S)
            for ref in ready:
                self._answer(ref)

    @property
    def outstanding(self) -> list:
        return list(self.calls)

    def _send(self) -> None:
        for slot in self.slots:
            if slot.state != "idle":
                continue
            order = self.schedule.next()
            if order is None:
                return
            slot.state, slot.order = "busy", order
            self.calls[slot.handle.do.remote(order)] = (slot, "do")
            self.on_event(Sent(slot.number, order.item.name, order.attempt))

    def _probe(self, slot: Slot) -> None:
        """Ask the worker to answer once its engine is made (at the start, or after a
        restart); until then it gets no image."""
        self.calls[slot.handle.ready.remote()] = (slot, "ready")

    def _answer(self, ref) -> None:
        slot, kind = self.calls.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError as exc:  # its process or its node died (or it was killed)
            self._lost(slot, kind, exc)
            return
        except RayTaskError as exc:  # the call raised: a fault of ours on that image
            if kind == "do":
                order = self._free(slot)
                done = Done(order.item.name, "failed", "internal_error", _last_line(exc))
                self._ended(slot, order, done)
            else:  # the engine could not be made on that worker
                slot.state = "gone"
                self.on_event(WorkerDown(slot.number, _last_line(exc), gone=True))
            return
        except RayError as exc:  # any other loss on Ray's side (an object, the memory
            self._lost(slot, kind, exc)  # monitor's kill): as if the worker died
            return
        if kind == "ready":
            slot.node, slot.pid = value
            slot.state = "idle"
            self.on_event(WorkerUp(slot.number, slot.node, slot.pid))
        else:
            self._ended(slot, self._free(slot), value)

    def _lost(self, slot: Slot, kind: str, exc: RayError) -> None:
        gone = isinstance(exc, ActorDiedError) and kind == "ready"
        reason = _death(exc)
        if kind == "do":
            order = self._free(slot)
            done = self.schedule.lost(order, reason)
            if done is None:
                self.on_event(Resent(slot.number, order.item.name, order.attempt + 1, reason))
            else:
                self.on_event(Ended(slot.number, done))
        if slot.state != "recovering" or gone:
            self.on_event(WorkerDown(slot.number, reason, gone))
        if gone:
            slot.state = "gone"
        else:
            slot.state = "recovering"
            self._probe(slot)

    def _free(self, slot: Slot) -> Order:
        order = slot.order
        assert order is not None
        slot.order, slot.state = None, "idle"
        return order

    def _ended(self, slot: Slot, order, done: Done) -> None:
        self.schedule.finished(order, done)
        self.on_event(Ended(slot.number, done))

    def _end_all(self, code: str, message: str) -> None:
        for done in self.schedule.abandon(code, message):
            self.on_event(Ended(None, done))


def _death(exc: RayError) -> str:
    if isinstance(exc, ActorDiedError):
        return "its worker died"
    if isinstance(exc, RayActorError):
        return "its worker's process or node was lost"
    return f"Ray lost its call ({type(exc).__name__})"


def _last_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
