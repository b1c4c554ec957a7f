"""Time left, learned from past runs of the same op at about the same size.

What it has learned is kept with the queued work (JobStore), so a restarted sidecar
still knows how long a beauty pass on a 24 MP frame takes."""

from __future__ import annotations

import math
import threading

from ..schema import Op

SMOOTHING = 0.3  # weight of the newest run in the running average


def size_bucket(megapixels: float) -> int:
    """Sizes within a factor of √2 share a bucket."""
    return round(2 * math.log2(max(megapixels, 0.01)))


class EtaModel:
    def __init__(self, known: dict[tuple[Op, int], float] | None = None) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[tuple[Op, int], float] = dict(known or {})

    def learn(self, op: Op, megapixels: float, seconds: float) -> tuple[tuple[Op, int], float]:
        """Fold in one finished run; returns the key and its new expected seconds."""
        key = (op, size_bucket(megapixels))
        with self._lock:
            old = self._seconds.get(key)
            new = seconds if old is None else old + SMOOTHING * (seconds - old)
            self._seconds[key] = new
        return key, new

    def eta(self, op: Op, megapixels: float, progress: float, elapsed: float) -> float | None:
        """Seconds left: from past runs when there are any, else extrapolated from this
        run once it is far enough along to say."""
        with self._lock:
            expected = self._seconds.get((op, size_bucket(megapixels)))
        left = 1.0 - min(max(progress, 0.0), 1.0)
        if expected is not None:
            if progress > 0.2:  # blend towards what this run shows
                observed = elapsed / progress
                expected = expected + progress * (observed - expected)
            return max(0.0, expected * left)
        if progress >= 0.05:
            return elapsed / progress * left
        return None
