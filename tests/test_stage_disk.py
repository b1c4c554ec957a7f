"""The stage cache's disk tier: survives restarts, never serves a damaged file, keeps
to its size cap, and survives being killed mid-write again and again."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time

import blake3
import numpy as np
import pytest
from retouch_support import FAKE_ID, run_op

from sidecar.cache.disk import DIGEST, DiskTier
from sidecar.cache.stages import StageCache
from sidecar.engines.retouch import RetouchEngine
from sidecar.engines.retouch.codecs import ARRAY


def stored(tier: DiskTier, key: str, arrays: dict, meta: dict | None = None) -> None:
    tier.put(key, arrays, meta or {"kind": "test"})
    tier.flush()


def test_arrays_and_meta_survive_a_restart(tmp_path):
    tier = DiskTier(tmp_path)
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.uint16)}
    stored(tier, "k1", arrays, {"kind": "test", "n": 3})
    tier.close()
    again = DiskTier(tmp_path).get("k1")
    assert again is not None
    loaded, meta = again
    assert meta == {"kind": "test", "n": 3}
    assert all(np.array_equal(loaded[name], arrays[name]) for name in arrays)
    assert loaded["a"].dtype == np.float32 and loaded["b"].dtype == np.uint16


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "empty"])
def test_a_damaged_or_foreign_file_is_a_miss_and_is_removed(tmp_path, damage):
    tier = DiskTier(tmp_path)
    stored(tier, "k", {"a": np.arange(1000, dtype=np.float32)})
    path = tier.path_for("k")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[DIGEST + 200] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "foreign":
        data = bytearray(b"\x80\x04pickled?" * 20)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert tier.get("k") is None
    assert not path.exists()


def test_the_least_recently_used_files_go_past_the_cap(tmp_path):
    one = {"a": np.zeros(10_000, np.uint8)}  # ~10 KB a file: three fit under the cap
    tier = DiskTier(tmp_path, cap_bytes=35_000)
    an_hour_ago = time.time() - 3600
    for age, key in enumerate(("old", "used", "new")):
        stored(tier, key, one)
        # written a minute apart: the order does not hang on the clock's resolution
        written = an_hour_ago + 60 * age
        os.utime(tier.path_for(key), (written, written))
    assert tier.get("old") is not None  # reading "old" makes it the most recent
    stored(tier, "newest", one)
    present = {k for k in ("old", "used", "new", "newest") if tier.path_for(k).exists()}
    assert present == {"old", "new", "newest"}  # "used" was the least recently used
    assert tier.used_bytes <= 35_000


def test_the_stage_cache_serves_from_disk_after_a_restart(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.full((4, 4), 7, np.float32)

    first = StageCache(disk=DiskTier(tmp_path))
    first.get_or_compute("key", compute, ARRAY)
    first.close()
    second = StageCache(disk=DiskTier(tmp_path))
    value = second.get_or_compute("key", compute, ARRAY)
    assert len(calls) == 1 and second.disk_hits == 1
    assert np.array_equal(value, np.full((4, 4), 7, np.float32))


def test_a_restarted_engine_retouches_from_its_stages_on_disk(tmp_path, portrait):
    first = RetouchEngine(StageCache(disk=DiskTier(tmp_path)))
    expected = run_op(first, portrait, "beauty")
    first.close()
    second = RetouchEngine(StageCache(disk=DiskTier(tmp_path)))
    again = run_op(second, portrait, "beauty", image_id=FAKE_ID)
    assert np.array_equal(again, expected)
    # the analysis and the draft's level came off the disk; the plan, kept in memory
    # only, was worked out again from the analysis
    assert second.cache.disk_hits == 2 and second.cache.misses == 3
    assert {meta["kind"] for _, meta in map(second.cache.disk.get, _keys(tmp_path))} == {
        "analysis",
        "array",
    }


def _keys(root) -> list[str]:
    return [path.stem for path in root.glob("*.stage")]


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, blake3
    from pathlib import Path
    from sidecar.cache.disk import DiskTier
    tier = DiskTier(Path(sys.argv[1]))
    n = int(sys.argv[2])
    while True:
        key = f"k{n % 40}"  # keys are rewritten over and over, as a cache's are
        seed = int.from_bytes(blake3.blake3(key.encode()).digest()[:4], "little")
        data = np.random.default_rng(seed).random(200_000, dtype=np.float32)
        tier.put(key, {"data": data}, {"key": key})
        tier.flush()
        print(n, flush=True)  # one write done; the next has begun
        n += 1
    """
)


def expected_for(key: str) -> np.ndarray:
    seed = int.from_bytes(blake3.blake3(key.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).random(200_000, dtype=np.float32)


@pytest.mark.parametrize(
    "kills",
    [pytest.param(5, id="5-kills"), pytest.param(50, id="50-kills", marks=pytest.mark.slow)],
)
def test_kills_mid_write_leave_no_damaged_entry(tmp_path, kills):
    rng = random.Random(5)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "stages"
    for kill in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), str(kill * 7)], stdout=subprocess.PIPE
        )
        # the writer writes ~1 MB files back to back and says when each is done: after
        # 1 to 3 of them, a kill lands somewhere in the next one (no clock involved)
        for _ in range(rng.randint(1, 3)):
            assert proc.stdout.readline(), "the writer stopped before it was killed"
        proc.kill()  # kill -9 (TerminateProcess on Windows)
        proc.wait(10)
        proc.stdout.close()
    tier = DiskTier(root)  # a start after the last kill clears the leftover temp files
    files = list(root.iterdir())
    assert files and all(f.suffix == ".stage" for f in files)
    for path in files:
        entry = tier.get(path.stem)
        assert entry is not None, f"{path.name} fails its checksum"
        arrays, meta = entry
        assert meta["key"] == path.stem
        assert np.array_equal(arrays["data"], expected_for(path.stem))
