"""A job's output file (`output` in its request): the sidecar writes it itself when the
job is done, from the result's pixels, in the target's format with the source file's
metadata (`imaging.outputs`), atomically. The write runs on a thread of its own, off
the worker thread, so the worker starts the next job while it goes on; the job is
`done` once both its result is on disk and its output is written, or `failed` with
`write_failed` when the output could not be written (its result stays cached)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..cache import ImageStore
from ..cache.atomic import atomic_fill, atomic_write
from ..imaging.outputs import write_result
from ..schema import ErrorDetail, JobRequest

log = logging.getLogger(__name__)

Then = Callable[[ErrorDetail | None], None]


def write_failed(message: str, path: str) -> ErrorDetail:
    return ErrorDetail(code="write_failed", message=message, details={"path": path})


class OutputWriter:
    """Writes done jobs' output files, one at a time, on its own thread."""

    def __init__(self, images: ImageStore) -> None:
        self._images = images
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="output-writer")

    def when_written(
        self, request: JobRequest, result_id: str, pixels: np.ndarray | None, then: Then
    ) -> None:
        """Write the output of `request` from `pixels` (None: the stored result
        `result_id`, read again), then call `then(None)` once the result is on disk
        too, or `then(error)` when the output could not be written."""
        both = _Both(then)
        self._images.when_settled(result_id, lambda _saved: both.one(None))
        try:
            self._pool.submit(self._write, request, result_id, pixels, both.one)
        except RuntimeError:  # stopping: nothing will write it
            both.one(write_failed("the sidecar is stopping", request.output.path))

    def close(self) -> None:
        """Finish the writes already asked for."""
        self._pool.shutdown(wait=True)

    def _write(self, request: JobRequest, result_id: str, pixels, then: Then) -> None:
        output = request.output
        assert output is not None
        try:
            target, op = Path(output.path), request.op.value
            if not target.parent.is_dir():  # never made here: a job brought back after
                # a crash does not bring back a folder removed since
                raise FileNotFoundError(f"no folder {target.parent}")
            if pixels is None:
                pixels = self._images.load(result_id)
            if pixels is None:
                error = write_failed("the result is no longer stored", output.path)
            else:
                source = Path(output.source) if output.source else None
                write_result(target, pixels, source, op, write=atomic_write, fill=atomic_fill)
                error = None
        except (OSError, ValueError) as exc:  # the folder, the disk, the source document
            error = write_failed(f"could not write {output.path}: {exc}", output.path)
        except MemoryError:
            error = ErrorDetail(
                code="out_of_memory", message="not enough memory to write the output file"
            )
        except Exception:
            log.exception("writing %s failed", output.path)
            error = write_failed(f"could not write {output.path}; see the sidecar log", output.path)
        del pixels
        then(error)


class _Both:
    """`then` once both waits are over: with the first error either gave, or None."""

    def __init__(self, then: Then) -> None:
        self._then = then
        self._left = 2
        self._error: ErrorDetail | None = None
        self._lock = threading.Lock()

    def one(self, error: ErrorDetail | None) -> None:
        with self._lock:
            self._error = self._error or error
            self._left -= 1
            if self._left:
                return
        self._then(self._error)
