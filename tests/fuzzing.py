"""Shared settings of the property and fuzz tests, and the tally of what they did.

The default run is short and repeatable (derandomised, no example database on disk);
`RETOUCH_FUZZ_SCALE=N` (scripts/reliability) multiplies every test's examples by N
and draws them at random. `RETOUCH_FIGURES=FILE` makes the tests append what they
did (requests sent, faults injected) to FILE as JSON lines, for the reliability
figures.
"""

from __future__ import annotations

import json
import os
import threading

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("RETOUCH_FUZZ_SCALE", "1")))
_lock = threading.Lock()


def fuzz(examples: int):
    """Hypothesis settings for a test of `examples` examples (times the scale)."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def tally(kind: str, count: int = 1) -> None:
    """Count `count` of `kind` (e.g. "requests", "faults") for the figures."""
    path = os.environ.get("RETOUCH_FIGURES")
    if not path:
        return
    with _lock, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"kind": kind, "count": count}) + "\n")
