"""A shoot of portraits through `retouch-sidecar batch`, against the naive loop: one
`retouch-sidecar apply` per image, each a cold start with empty caches (what a script
around a one-shot tool does). Both are real processes, measured wall to wall.

    .venv/bin/python -m bench.batch            # 10 images, 3000×2000 16-bit TIFF
    .venv/bin/python -m bench.batch --quick    # 3 images, 300×200 (CI)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tifffile

from .report import arguments, machine, publish
from .retouch import portrait16
from .sidecar import free_port


def cli(args: list[str], root: Path) -> float:
    env = {
        **os.environ,
        "RETOUCH_CACHE_DIR": str(root / "cache"),
        "RETOUCH_CONFIG_DIR": str(root / "config"),
        "RETOUCH_DATA_DIR": str(root / "data"),
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sidecar", *args, "--port", str(free_port())],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "3 small images (CI)", argv)
    count, (width, height) = (3, (300, 200)) if args.quick else (10, (3000, 2000))
    base = portrait16(width, height)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        shoot = root / "shoot"
        shoot.mkdir()
        for index in range(count):
            pixels = base.copy()
            pixels[-1, -1, 0] = index  # ten different frames
            tifffile.imwrite(shoot / f"IMG_{index:04d}.tif", pixels, photometric="rgb")
        batch = cli(["batch", str(shoot), str(root / "out"), "--op", "beauty"], root / "b")
        naive = 0.0
        for index, path in enumerate(sorted(shoot.iterdir())):
            out = root / "naive" / path.name
            out.parent.mkdir(exist_ok=True)
            naive += cli(["apply", str(path), str(out), "--op", "beauty"], root / f"n{index}")
        rerun = cli(["batch", str(shoot), str(root / "out2"), "--op", "beauty"], root / "b")
    rows = [
        ["batch (one process, models warm, caches)", f"{batch:.1f} s", f"{batch / count:.2f} s"],
        [
            "naive loop (apply per image, cold, no cache)",
            f"{naive:.1f} s",
            f"{naive / count:.2f} s",
        ],
        [
            "batch again into a new folder (result cache)",
            f"{rerun:.1f} s",
            f"{rerun / count:.2f} s",
        ],
        ["naive ÷ batch", f"{naive / batch:.1f}×", ""],
    ]
    meta = {
        "machine": machine(),
        "runs": 1,
        "input": f"{count} portraits, {width}x{height} 16-bit TIFF, beauty; wall time of the"
        " whole command(s)",
        "target": "batch at least 2.5× faster than the naive loop",
    }
    publish(
        args, "batch", "Batch against the naive loop", ["how", "total", "per image"], rows, meta
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
