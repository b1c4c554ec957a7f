"""The naive Apply and batch: the product's own retouch ops, at full resolution only.

No drafts, no stage cache: an Apply renders the final level straight from the pixels
and nothing is shown until it is done. The batch is a loop over the files that loads
the model (the face and skin graphs) again for each image and caches nothing.

    python -m bench.naive.retouch IN_DIR OUT_DIR --op beauty
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile

from sidecar.cache.stages import StageCache
from sidecar.engines.base import RunInput
from sidecar.engines.retouch import RetouchEngine
from sidecar.schema import JobRequest

from .cache import image_key


class _Nothing:
    """A job context that shows nothing and never stops the work."""

    def stage(self, *args) -> None: ...

    def progress(self, *args) -> None: ...

    def preview(self, *args, **kwargs) -> None: ...

    def checkpoint(self) -> None: ...


def load_engine() -> RetouchEngine:
    """The classical engine with a stage cache of zero bytes: nothing is kept."""
    return RetouchEngine(StageCache(budget_bytes=0))


def apply_full(
    engine: RetouchEngine,
    pixels: np.ndarray,
    op: str,
    params: dict | None = None,
    intensity: float = 1.0,
) -> np.ndarray:
    """The whole op at full resolution, synchronously; returns the result pixels."""
    request = JobRequest(
        op=op,
        image_id=image_key(pixels),  # any id: with a zero-byte cache it keys nothing
        intensity=intensity,
        params=params or {},
        preview={"progressive": False},
    )
    return engine.run(RunInput(request=request, seed=0, pixels=pixels), _Nothing())


def batch(in_dir: Path, out_dir: Path, op: str, params: dict | None = None) -> int:
    """Every TIFF in `in_dir`, one after another, each with a freshly loaded model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    for path in sorted(in_dir.glob("*.tif")):
        engine = load_engine()
        try:
            pixels = tifffile.imread(path)
            result = apply_full(engine, pixels, op, params)
            tifffile.imwrite(out_dir / path.name, result, photometric="rgb")
            done += 1
        finally:
            engine.close()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The naive batch loop.")
    parser.add_argument("in_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--op", default="beauty")
    args = parser.parse_args(argv)
    batch(args.in_dir, args.out_dir, args.op)
    return 0


if __name__ == "__main__":
    sys.exit(main())
