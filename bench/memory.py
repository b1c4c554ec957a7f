"""Peak resident memory (RSS) of a server process over the stretches a figure measures.

On Linux the kernel keeps the high-water mark (VmHWM) and lets the owner reset it to
the current RSS (`clear_refs` 5), so a peak is exact however short it lasts. Where that
is refused, a thread samples VmRSS every 5 ms instead. A child that runs to its end
(the batch commands) is measured by its own VmHWM, read until it exits.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def status_kb(pid: int, field: str) -> int | None:
    """A field of /proc/PID/status in kB (VmRSS, VmHWM), or None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """`with peak.measure(): ...` any number of times; `peak.mb` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb: float | None = None

    def _reset(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def _note(self, kb: int | None) -> None:
        if kb is not None:
            self.mb = max(self.mb or 0.0, kb / 1024)

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        if self._reset():
            try:
                yield
            finally:
                self._note(status_kb(self.pid, "VmHWM"))
            return
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                self._note(status_kb(self.pid, "VmRSS"))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()


def run_peak_mb(proc: subprocess.Popen, interval: float = 0.01) -> tuple[int, float]:
    """Wait for a child process: its exit status and its peak RSS in MB, from its own
    VmHWM read until it exits. (wait4's ru_maxrss will not do: Linux carries it across
    exec, so it starts at the parent's RSS when the child was forked.)"""
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, status_kb(proc.pid, "VmHWM") or 0)
        time.sleep(interval)
    return proc.returncode, peak_kb / 1024
