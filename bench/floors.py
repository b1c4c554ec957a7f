"""Floors: the least time the same work could take on this machine, measured in the
same run as the figures they sit beside, so each figure shows the product, the naive
way and the limit side by side.

- The op's compute alone: the retouch engine (sidecar.engines.retouch) run in this
  process at full resolution with `preview.progressive` off, a context that does
  nothing (no previews, progress or checkpoints) and no image id, so nothing is cached
  or looked up; its models are loaded before the clock starts, as the sidecar's are.
  For a batch, each file's decode (the sidecar's TIFF decoder), that run and the TIFF
  encode of its result, summed over the files.
- Bytes over loopback (bench/loopback.py, a server in a process of its own as the
  sidecar is): a plain `sendfile` of the same number of bytes, from a file in the page
  cache, by a tiny aiohttp server (web.FileResponse), read to the last byte by the
  product's client code (`SidecarClient.result`); and a plain socket: one sendall on a
  kept-alive connection to a reader that drains it into a buffer and answers one byte
  (what an upload is without HTTP, hashing or storing).

The work runs in threads or other processes, off the harness's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidecar.blas import blas_on_one_thread
from sidecar.engines.base import RunInput
from sidecar.engines.retouch import RetouchEngine
from sidecar.imaging import decode_image, read_header
from sidecar.imaging.encode import fit_within
from sidecar.imaging.pixels import Limits
from sidecar.imaging.tiff import encode_tiff
from sidecar.schema import JobRequest

from .loopback import sendfile_seconds, socket_seconds
from .report import Figure, Options, Outcome, median, number

WARM_SIDE = 512  # the engine's warm-up: the whole picture this size (a face: every model)


@dataclass
class Floor:
    """One figure's floor: a value per run, in the figure's unit, and how it was had."""

    values: list[float]
    how: str

    def attach(self, figures: Sequence[Figure], number: str) -> None:
        """Set it on the figure numbered `number` (there is always one)."""
        figure = next(f for f in figures if f.number == number)
        figure.floor, figure.floor_how = list(self.values), self.how


class _Quiet:
    """A JobContext that does nothing: no previews, progress or checkpoints."""

    def stage(self, *args) -> None: ...
    def progress(self, *args) -> None: ...
    def preview(self, *args, **kwargs) -> None: ...
    def checkpoint(self) -> None: ...


def compute(engine: RetouchEngine, pixels: np.ndarray, op: str = "beauty") -> np.ndarray:
    """The op's full-resolution result alone: progressive off, no previews; no image id,
    so the engine caches nothing (a request needs one, so it is dropped after checking)."""
    request = JobRequest(op=op, image_id="ab" * 32, preview={"progressive": False})
    request = request.model_copy(update={"image_id": None})
    return engine.run(RunInput(request=request, seed=0, pixels=pixels), _Quiet())


def _warm(engine: RetouchEngine, pixels: np.ndarray) -> None:
    """Load the engine's models: a run on the whole picture made small, so the face
    is found and the person segmentation runs too (a corner may hold no face)."""
    compute(engine, np.ascontiguousarray(fit_within(pixels, WARM_SIDE)))


def _runs(n: int) -> str:
    return "one run" if n == 1 else f"median of {n} runs"


def engine_seconds(pixels: np.ndarray, runs: int, op: str = "beauty") -> list[float]:
    """Seconds of `runs` full-resolution runs of the op on `pixels`, models loaded first."""
    blas_on_one_thread()  # as the sidecar's process has it
    engine = RetouchEngine()
    try:
        _warm(engine, pixels)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            compute(engine, pixels, op)
            times.append(time.perf_counter() - start)
        return times
    finally:
        engine.close()


def batch_seconds(files: Sequence[Path], runs: int, op: str = "beauty") -> list[float]:
    """Per run, the sum over `files` (TIFF) of decode + the op + TIFF encode of its
    result, in this process, one engine for all (models loaded first); the files are
    read into memory before the clock starts and nothing is written."""
    bodies = [path.read_bytes() for path in files]
    blas_on_one_thread()  # as the sidecar's process has it
    engine = RetouchEngine()
    try:
        _warm(engine, _decode(bodies[0]))
        times = []
        for _ in range(runs):
            total = 0.0
            for body in bodies:
                start = time.perf_counter()
                encode_tiff(compute(engine, _decode(body), op), None)
                total += time.perf_counter() - start
            times.append(total)
        return times
    finally:
        engine.close()


def _decode(body: bytes) -> np.ndarray:
    return decode_image(body, read_header(body, "tiff", complete=True), Limits())


# -- each figure's floor, for the module that owns the figure --------------------------


def sendfile_how(nbytes: int, runs: int) -> str:
    return (
        f"a plain sendfile of the same {nbytes / 1e6:.0f} MB from a file in the page cache"
        " by a tiny aiohttp server (web.FileResponse, a process of its own) over loopback,"
        f" read to the last byte by the same client code (SidecarClient.result); {_runs(runs)}"
    )


async def transfer_floor(nbytes: int, opts: Options) -> Floor:
    """Figure 2's floor, in ms: the same bytes by sendfile over loopback."""
    runs = opts.n(5, 2)
    seconds = await sendfile_seconds(nbytes, runs)
    return Floor([s * 1000 for s in seconds], sendfile_how(nbytes, runs))


async def apply_floor(outcome: Outcome, opts: Options, pixels: np.ndarray) -> None:
    """Figure 1b's floor, in ms: the op's compute alone on `pixels` plus moving its
    result's bytes over loopback (figure 2's floor), run by run."""
    runs = opts.n(3, 1)
    compute_s = await asyncio.to_thread(engine_seconds, pixels, runs)
    moved_s = await sendfile_seconds(pixels.nbytes, runs)
    how = (
        "the op's compute alone: RetouchEngine.run in the bench process at full resolution,"
        " preview.progressive off, no previews, nothing cached, models loaded first"
        f" ({number(median(compute_s) * 1000)} ms), plus moving the result: "
        + sendfile_how(pixels.nbytes, runs)
    )
    values = [(c + m) * 1000 for c, m in zip(compute_s, moved_s, strict=True)]
    Floor(values, how).attach(outcome.figures, "1b")


async def batch_floor(files: Sequence[Path], opts: Options) -> Floor:
    """Figure 6's floor, in s: decode + the op + TIFF encode per file, summed."""
    runs = opts.n(3, 1)
    seconds = await asyncio.to_thread(batch_seconds, list(files), runs)
    how = (
        f"the op's compute alone over the {len(files)} files: the sidecar's TIFF decode, "
        "RetouchEngine.run (progressive off, no previews, nothing cached) and the TIFF"
        " encode of the result, summed, in the bench process with the models loaded once"
        f" and the files already in memory, nothing written; {_runs(runs)}"
    )
    return Floor(seconds, how)


def upload_floor(pixels: np.ndarray, runs: int) -> Floor:
    """Figure 8's floor, in MB/s: the same bytes by one sendall over loopback."""
    seconds = socket_seconds(memoryview(np.ascontiguousarray(pixels)).cast("B"), runs)
    how = (
        f"one sendall of the same {pixels.nbytes / 1e6:.0f} MB on a kept-alive loopback TCP"
        " connection to a reader (a process of its own) that drains it into a buffer and"
        f" answers one byte: no HTTP, hashing or storing; {_runs(runs)}"
    )
    return Floor([pixels.nbytes / 1e6 / s for s in seconds], how)
