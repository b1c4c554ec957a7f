"""The on-disk image store: atomic, self-checking, never serves a damaged file."""

from __future__ import annotations

import numpy as np

from sidecar.cache import ImageStore, image_id
from sidecar.cache.atomic import TEMP_PREFIX


def test_put_then_load_is_exact(tmp_path, portrait16):
    store = ImageStore(tmp_path)
    info, created = store.put(portrait16)
    assert created and info.image_id == image_id(portrait16)
    assert store.put(portrait16)[1] is False
    np.testing.assert_array_equal(store.load(info.image_id), portrait16)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{info.image_id}.img"]


def test_damaged_file_is_a_miss_and_is_removed(tmp_path, portrait):
    store = ImageStore(tmp_path)
    info, _ = store.put(portrait)
    path = store.path_for(info.image_id)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last pixel
    path.write_bytes(bytes(data))
    assert store.load(info.image_id) is None
    assert not path.exists()


def test_truncated_or_foreign_file_is_a_miss(tmp_path, portrait):
    store = ImageStore(tmp_path)
    info, _ = store.put(portrait)
    path = store.path_for(info.image_id)
    path.write_bytes(path.read_bytes()[:1000])
    assert store.info(info.image_id) is None and not path.exists()
    path.write_bytes(b"\x80\x04\x95 definitely not ours")  # e.g. a pickle someone dropped in
    assert store.load(info.image_id) is None and not path.exists()


def test_stale_temp_files_are_cleared_on_start(tmp_path, portrait):
    (tmp_path / "ab").mkdir()
    stale = tmp_path / "ab" / f"{TEMP_PREFIX}x.img.1234"
    stale.write_bytes(b"half written")
    ImageStore(tmp_path)
    assert not stale.exists()


def test_ids_outside_the_pattern_never_touch_the_filesystem(tmp_path):
    store = ImageStore(tmp_path)
    for bad in ("../../token", "A" * 64, "", "0" * 64 + "/x"):
        assert store.has(bad) is False
