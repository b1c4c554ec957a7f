"""The progress of a shoot on a cluster (rich): the overall bar with images/s and the
time left, and a row per worker with the image it is on, how many it has done and its
load (the share of its time it was working). Off a terminal, plain lines only."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console

from ..cluster import Ended, Event, Placed, Resent, Sent, WorkerDown, WorkerUp
from .display import Display
from .report import Outcome


@dataclass
class WorkerRow:
    task: int
    label: str
    image: str = ""
    done: int = 0
    busy_s: float = 0.0
    sent_at: float | None = None
    up_at: float = 0.0
    state: str = "starting"

    def load(self, now: float) -> float:
        busy = self.busy_s + (now - self.sent_at if self.sent_at is not None else 0.0)
        return min(busy / max(now - self.up_at, 1e-9), 1.0) if self.up_at else 0.0


class ClusterDisplay(Display):
    def __init__(self, total: int, console: Console) -> None:
        self._overall_bar(total, console)  # a row per worker, not one for the image
        self.workers: dict[int, WorkerRow] = {}
        self.started: float | None = None  # the first image sent
        self.ended = 0  # images ended on the cluster (this run's work)
        self.last_end: float | None = None

    def job_event(self, name: str, event) -> None:  # a sidecar's job events: none here
        pass

    def cluster_event(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, Placed):
            nodes = f"{event.nodes} node" + ("" if event.nodes == 1 else "s")
            self.note(
                f"cluster: {event.where}, {nodes}, {event.workers} workers of {event.per_worker}"
            )
        elif isinstance(event, WorkerUp):
            row = self._row(event.worker)
            row.label = f"worker {event.worker} ({event.node}, pid {event.pid})"
            row.state, row.up_at = "idle", row.up_at or now
            if not self.progress.disable:
                self.progress.update(row.task, description=row.label)
        elif isinstance(event, WorkerDown):
            row = self._row(event.worker)
            row.state = "gone" if event.gone else "restarting"
            self._stop(row, now)
            self.note(f"worker {event.worker}: {row.state} ({event.reason})")
        elif isinstance(event, Sent):
            row = self._row(event.worker)
            self.started = self.started or now
            row.image, row.sent_at, row.state = event.name, now, "busy"
        elif isinstance(event, Resent):
            note = f"{event.reason} (worker {event.worker}); attempt {event.attempt}"
            self.note(f"{'resent':<8} {event.name}: {note}")
        elif isinstance(event, Ended):
            self.ended += 1
            self.last_end = now
            if event.worker is not None:
                row = self._row(event.worker)
                row.done += 1
                self._stop(row, now)
        self._refresh(now)

    def finished(self, outcome: Outcome) -> None:
        super().finished(outcome)
        self._refresh(time.monotonic())

    def rate(self, now: float | None = None) -> float:
        """Images ended per second since the first was sent."""
        if self.started is None or not self.ended:
            return 0.0
        return self.ended / max((now or time.monotonic()) - self.started, 1e-9)

    def rate_line(self) -> str:
        """The run's images/s and each worker's share, up to the last image's end."""
        now = self.last_end or time.monotonic()
        loads = ", ".join(
            f"{number}: {row.done} images, {row.load(now):.0%} busy"
            for number, row in sorted(self.workers.items())
        )
        seconds = now - self.started if self.started is not None else 0.0
        return f"cluster: {self.ended} images in {seconds:.1f} s, {self.rate():.2f} images/s" + (
            f" (workers {loads})" if loads else ""
        )

    def _row(self, number: int) -> WorkerRow:
        if number not in self.workers:
            label = f"worker {number}"
            task = self.progress.add_task(label, total=1.0, detail="starting")
            self.workers[number] = WorkerRow(task, label)
        return self.workers[number]

    def _stop(self, row: WorkerRow, now: float) -> None:
        if row.sent_at is not None:
            row.busy_s += now - row.sent_at
        row.sent_at, row.image = None, ""
        if row.state == "busy":
            row.state = "idle"

    def _refresh(self, now: float) -> None:
        if self.progress.disable:
            return
        rate = self.rate()
        left = self.total - self.count
        eta = f", {left / rate:.0f} s left" if rate and left else ""
        detail = f"{self.count}/{self.total}, {rate:.2f} images/s{eta}"
        self.progress.update(self.overall, detail=detail)
        for row in self.workers.values():
            doing = row.image if row.state == "busy" else row.state
            self.progress.update(
                row.task, completed=row.load(now), detail=f"{doing} ({row.done} done)"
            )
