"""The stage cache: content keys, LRU within a byte budget."""

from __future__ import annotations

import numpy as np

from sidecar.cache.stages import StageCache, stage_key


def test_keys_depend_on_every_part():
    assert stage_key("skin/1", "ab") == stage_key("skin/1", "ab")
    assert stage_key("skin/1", "ab") != stage_key("skin/2", "ab")
    assert stage_key("a", "bc") != stage_key("ab", "c")


def test_computes_once_then_serves():
    cache = StageCache()
    calls = []

    def compute():
        calls.append(1)
        return np.ones(10)

    first = cache.get_or_compute("k", compute)
    second = cache.get_or_compute("k", compute)
    assert first is second and len(calls) == 1
    assert cache.hits == 1


def test_least_recently_used_goes_first_when_over_budget():
    cache = StageCache(budget_bytes=3 * 8_000 + 500)
    for name in "abc":
        cache.put(name, np.zeros(1000))  # 8,000 bytes each
    cache.get("a")  # a is now the most recent
    cache.put("d", np.zeros(1000))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.used_bytes <= 3 * 8_000 + 500
    cache.put("huge", np.zeros(10_000))  # larger than the whole budget: not kept
    assert "huge" not in cache and "a" in cache
