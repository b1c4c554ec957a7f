"""The stage cache's disk tier: named arrays plus a little JSON, one file per key.

A file is `<digest 32 bytes><safetensors bytes>`: safetensors holds the arrays (a
format that cannot run code; never pickle) and the JSON in its metadata, and the
BLAKE3 digest of everything after it is checked on every read, so a torn, corrupt or
foreign file is a miss and is removed, never served. Writes are atomic (temp, fsync,
rename) and go through one writer thread, behind the caller. The folder has a size
cap: the least recently used files go first (reads touch their file's time).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from .atomic import atomic_write, remove_stale_temps

log = logging.getLogger(__name__)

SUFFIX = ".stage"
DIGEST = 32
DEFAULT_CAP = 8 << 30


class DiskTier:
    def __init__(self, root: Path, cap_bytes: int = DEFAULT_CAP) -> None:
        self.root = root
        self.cap = cap_bytes
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(root)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        for path in root.glob(f"*{SUFFIX}"):
            self._sizes[path.stem] = path.stat().st_size
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage-writer")

    def path_for(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """(arrays, meta) or None: absent, or damaged (then the file is removed)."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        body = memoryview(data)[DIGEST:]
        try:
            if len(data) <= DIGEST or blake3.blake3(body).digest() != data[:DIGEST]:
                raise ValueError("checksum mismatch")
            arrays = st_load(bytes(body))
            meta = json.loads(_metadata(bytes(body)).get("json", "{}"))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("dropping a damaged stage file %s: %s", path.name, exc)
            self._remove(key)
            return None
        try:
            os.utime(path)  # most recently used
        except FileNotFoundError:
            return None
        return arrays, meta

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Store behind the caller: the arrays must not change afterwards."""
        self._writer.submit(self._write, key, arrays, meta)

    def flush(self) -> None:
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def _write(self, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
        try:
            contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
            body = st_save(contiguous, metadata={"json": json.dumps(meta)})
            atomic_write(self.path_for(key), [blake3.blake3(body).digest(), body])
        except OSError as exc:  # a full disk loses a cache entry, nothing more
            log.warning("could not store stage %s: %s", key[:12], exc)
            return
        with self._lock:
            self._sizes[key] = DIGEST + len(body)
        self._evict()

    def _evict(self) -> None:
        with self._lock:
            if sum(self._sizes.values()) <= self.cap:
                return
            keys = list(self._sizes)
        by_age = sorted(keys, key=self._mtime)
        for key in by_age:
            with self._lock:
                if sum(self._sizes.values()) <= self.cap:
                    return
            self._remove(key)

    def _mtime(self, key: str) -> float:
        try:
            return self.path_for(key).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _remove(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)
        with self._lock:
            self._sizes.pop(key, None)


def _metadata(body: bytes) -> dict:
    """The safetensors header's __metadata__ (the library's numpy loader drops it)."""
    length = int.from_bytes(body[:8], "little")
    header = json.loads(body[8 : 8 + length])
    return header.get("__metadata__") or {}
