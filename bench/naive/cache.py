"""The naive result cache: one pickle file per result on disk, keyed by a hash of the
first 64 KB of the image's pixels with the op, params and intensity.

Keying on a prefix is quick at any image size, and wrong: a 24 MP portrait holds
64 KB in its first rows of background, so an edit anywhere below them keeps the key
and the cache answers with the result of the pixels before the edit.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

PREFIX_BYTES = 64 * 1024


def image_key(pixels: np.ndarray) -> str:
    """Hex SHA-256 of the first 64 KB of the pixel bytes."""
    data = memoryview(np.ascontiguousarray(pixels)).cast("B")
    return hashlib.sha256(data[:PREFIX_BYTES]).hexdigest()


def result_key(image: str, op: str, params: dict, intensity: float) -> str:
    material = json.dumps([image, op, params, intensity], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


class PickleCache:
    """`get`/`put` of any value as `<folder>/<key>.pkl`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.pkl"

    def get(self, key: str) -> Any | None:
        path = self._path(key)
        if not path.exists():
            return None
        with path.open("rb") as file:
            return pickle.load(file)

    def put(self, key: str, value: Any) -> None:
        with self._path(key).open("wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
