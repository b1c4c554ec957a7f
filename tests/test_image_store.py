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
    np.testing.assert_array_equal(store.load(info.image_id), portrait16)  # from memory
    store.flush()
    np.testing.assert_array_equal(store.load(info.image_id), portrait16)  # from disk
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{info.image_id}.img"]


def test_damaged_file_is_a_miss_and_is_removed(tmp_path, portrait):
    store = ImageStore(tmp_path)
    info, _ = store.put(portrait)
    store.flush()
    path = store.path_for(info.image_id)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last pixel
    path.write_bytes(bytes(data))
    assert store.load(info.image_id) is None
    assert not path.exists()


def test_truncated_or_foreign_file_is_a_miss(tmp_path, portrait):
    store = ImageStore(tmp_path)
    info, _ = store.put(portrait)
    store.flush()
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


def test_close_persists_everything_accepted(tmp_path, portrait):
    store = ImageStore(tmp_path)
    keys = []
    for i in range(5):
        pixels = portrait.copy()
        pixels[0, 0, 0] = i
        keys.append(store.put(pixels)[0].image_id)
    store.close()
    reopened = ImageStore(tmp_path)
    for key in keys:
        assert reopened.load(key) is not None


def test_put_waits_when_pending_writes_exceed_the_budget(tmp_path, portrait):
    store = ImageStore(tmp_path, pending_budget=portrait.nbytes)  # room for one at a time
    for i in range(3):
        pixels = portrait.copy()
        pixels[0, 0, 0] = i
        assert store.put(pixels)[1] is True
        assert store._pending_bytes <= portrait.nbytes
    store.close()
    assert len([p for p in tmp_path.rglob("*.img")]) == 3


def test_failed_disk_write_keeps_the_image_in_memory_and_the_store_working(tmp_path, portrait):
    store = ImageStore(tmp_path)
    key = image_id(portrait)
    (tmp_path / key[:2]).write_bytes(b"a file where the folder should be")
    info, created = store.put(portrait)
    assert created
    store.flush()
    assert not (tmp_path / key[:2]).is_dir()  # never half there on disk
    assert np.array_equal(store.load(key), portrait)  # but served from memory this run
    other = portrait.copy()
    other[0, 0, 0] ^= 1
    assert image_id(other)[:2] != key[:2]
    store.put(other)
    store.flush()
    assert store.load(image_id(other)) is not None
