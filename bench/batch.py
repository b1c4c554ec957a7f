"""Figure 6: a 10-image batch, wall to wall, with each side's peak RSS.

Product: `retouch-sidecar batch IN OUT --op beauty` (one process: it starts a sidecar
inside itself, models load once; the sidecar reads each file by its path and writes
each output itself, the final on two threads). Baseline:
`python -m bench.naive.retouch IN OUT --op beauty` (a loop that loads the model for
each image and caches nothing). Each run starts from empty folders, so neither side
has anything cached; the two alternate run by run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tifffile

from . import floors
from .harness import portrait, variant
from .memory import run_peak_mb
from .report import Figure, Options, Outcome, machine, median, number
from .sidecar import REPO, free_port


def wall(command: list[str], root: Path) -> tuple[float, float]:
    """Run a command to its end: seconds and its peak RSS in MB."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RETOUCH_CACHE_DIR": str(root / "cache"),
        "RETOUCH_CONFIG_DIR": str(root / "config"),
        "RETOUCH_DATA_DIR": str(root / "data"),
    }
    root.mkdir(parents=True, exist_ok=True)
    with (root / "stderr.txt").open("w+b") as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors
        )
        code, peak = run_peak_mb(proc)
        seconds = time.perf_counter() - started
        if code != 0:
            errors.seek(0)
            raise RuntimeError(f"{command[2]} failed ({code}): {errors.read()[-2000:]!r}")
    return seconds, peak


def product(shoot: Path, out: Path, root: Path) -> tuple[float, float]:
    command = [sys.executable, "-m", "sidecar", "batch", str(shoot), str(out), "--op", "beauty"]
    return wall(command + ["--port", str(free_port())], root)


def naive(shoot: Path, out: Path, root: Path) -> tuple[float, float]:
    command = [sys.executable, "-m", "bench.naive.retouch", str(shoot), str(out), "--op", "beauty"]
    return wall(command, root)


async def run(opts: Options) -> Outcome:
    count, (width, height) = (3, (300, 200)) if opts.quick else (10, (3000, 2000))
    runs = opts.n(5, 1)
    base = portrait(width, height)
    got: dict[str, list[tuple[float, float]]] = {"product": [], "naive": []}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        shoot = root / "shoot"
        shoot.mkdir()
        for index in range(count):
            path = shoot / f"IMG_{index:04d}.tif"
            tifffile.imwrite(path, variant(base, index), photometric="rgb")
        for run in range(runs):
            order = ("product", "naive") if run % 2 == 0 else ("naive", "product")
            for side in order:
                do = product if side == "product" else naive
                got[side].append(do(shoot, root / f"{side}-out-{run}", root / f"{side}-{run}"))
        # the product again into a new folder, on the last run's folders: results cached
        rerun = product(shoot, root / "again-out", root / f"product-{runs - 1}")[0]
        floor = await floors.batch_floor(sorted(shoot.glob("*.tif")), opts)
    where = machine()
    seconds = {side: [s for s, _ in values] for side, values in got.items()}
    peaks = {side: [p for _, p in values] for side, values in got.items()}
    figures = [
        Figure(
            "6",
            f"Batch of {count} portraits ({width}×{height} 16-bit TIFF, beauty), wall time",
            "s",
            seconds["product"],
            seconds["naive"],
            product_how="`retouch-sidecar batch` (sidecar inside the command, models loaded"
            " once, caches empty at the start)",
            baseline_how="`python -m bench.naive.retouch`: a loop that loads the model for each"
            " image, full resolution, no cache",
            machine=where,
            note=f"{number(median(seconds['product']) / count)} s against"
            f" {number(median(seconds['naive']) / count)} s an image. The model here is the"
            " classical engine's (the face and skin graphs), cheap to load, so reloading it"
            " costs the baseline little; the product's batch also stores each result durably"
            " (fsync) for its result cache and writes each output with fsync. The same batch"
            f" again into a new folder took the product {number(rerun)} s"
            " (result cache)",
        ),
        Figure(
            "6 RSS",
            "Peak RSS of the batch process",
            "MB",
            peaks["product"],
            peaks["naive"],
            words=("smaller", "larger"),
            product_how="the whole `retouch-sidecar batch` process (client and sidecar)",
            baseline_how="the naive loop's process",
            machine=where,
        ),
    ]
    floor.attach(figures, "6")
    return Outcome(figures=figures)
