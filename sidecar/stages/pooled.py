"""Independent parts of a stage's work run on a pool beside the caller, never waited
for behind a queue: what the pool has not started yet is taken back and done here."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future


def beside(pool: Executor | None, fn: Callable, *args) -> Future | None:
    """`fn(*args)` submitted to `pool` (None without one), for `taken` or `settle`."""
    return None if pool is None else pool.submit(fn, *args)


def taken(future: Future | None, fn: Callable, *args):
    """`fn(*args)`, which `future` (from `beside`) runs: its result once the pool has
    started it, or made here when it has not (so nothing waits behind a queue)."""
    if future is None or future.cancel():
        return fn(*args)
    return future.result()


def settle(future: Future | None) -> None:
    """A future whose result is not needed: dropped if not started, else waited for."""
    if future is not None and not future.cancel():
        future.result()
