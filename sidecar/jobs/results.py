"""A job's result and the result cache.

Same request, same pixels: a request without a seed gets one derived from its image's
content and its params. A result is kept under a key naming everything it depends on
(`result_key`); the pixels are a file in the content-addressed image store and the
key → result id index is in the job store, so an identical request later is answered
from the cache without queueing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import blake3
import numpy as np

from ..cache import ImageStore
from ..cache.result_file import ResultFile
from ..engines import Engine
from ..schema import JobRequest, Op
from .store import JobStore


def derive_seed(request: JobRequest) -> int:
    """The seed when none is given: from the image's content hash and the params, so
    the same request gives the same pixels."""
    material = json.dumps(
        [request.image_id, request.op.value, request.params, request.prompt], sort_keys=True
    ).encode()
    return int.from_bytes(blake3.blake3(material).digest(8), "big") & (2**63 - 1)


def result_key(engine: Engine, request: JobRequest, seed: int) -> str:
    """What a result depends on: the engine and its version (model included), the op,
    the full-pixel image id, the layer stack, params, intensity, prompt, seed."""
    material = json.dumps(
        [
            "result/1",
            engine.name,
            engine.version,
            request.op.value,
            request.image_id,
            request.layer_stack_hash,
            request.params,
            request.intensity,
            request.prompt,
            seed,
        ],
        sort_keys=True,
    ).encode()
    return blake3.blake3(material).hexdigest()


class ResultCache:
    """Results by request: found for a new request, kept for a finished job."""

    def __init__(self, images: ImageStore, store: JobStore, engines: Mapping[Op, Engine]):
        self._images = images
        self._store = store
        self._engines = engines

    def key(self, request: JobRequest, seed: int) -> str:
        return result_key(self._engines[request.op], request, seed)

    def find(self, request: JobRequest, seed: int) -> str | None:
        """The stored result of an earlier identical request; None if there is none or
        its image has gone from the store (then it is made again)."""
        result_id = self._store.cached_result(self.key(request, seed))
        return result_id if result_id is not None and self._images.has(result_id) else None

    def keep(
        self, request: JobRequest, seed: int, pixels: np.ndarray, written: ResultFile | None = None
    ) -> str:
        """Store the pixels a request made and index them under its key; returns the
        result's id. The file is written behind (`written`: the file its rows went into
        as they were made): see `when_on_disk`."""
        info, _ = self._images.put(np.ascontiguousarray(pixels), written=written)
        self._store.save_result(self.key(request, seed), info.image_id)
        return info.image_id

    def when_on_disk(self, result_id: str, callback: Callable[[], None]) -> None:
        """Call `callback()` once the result's file is on disk, or once it is known that
        the disk refused it (then it is served from memory for this run, not durable)."""
        self._images.when_settled(result_id, lambda _saved: callback())
