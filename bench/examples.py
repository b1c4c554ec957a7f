"""Before/after pictures of each retouch op on the sample portrait (docs/images/).

Each picture is the face, enlarged, before (left) and after (right), plus one with the
skin mask the ops work within. Run through `scripts/examples`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from sidecar.cache.stages import StageCache
from sidecar.engines.base import RunInput
from sidecar.engines.retouch import RetouchEngine
from sidecar.engines.retouch.tiles import Box, sample
from sidecar.schema import RETOUCH_OPS, JobRequest

OUT = Path(__file__).parent.parent / "docs" / "images"


class _Quiet:
    def stage(self, *a): ...
    def progress(self, *a): ...
    def preview(self, *a, **k): ...
    def checkpoint(self): ...


def sample_portrait() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def crop_face(engine: RetouchEngine, pixels: np.ndarray) -> tuple[slice, slice]:
    analysis = engine.analyse(None, pixels)
    if not analysis.faces:
        return slice(None), slice(None)
    x0, y0, x1, y1 = (v / analysis.scale for v in analysis.faces[0].box)
    pad = 0.35 * (x1 - x0)
    h, w = pixels.shape[:2]
    return (
        slice(max(int(y0 - pad), 0), min(int(y1 + pad * 1.6), h)),
        slice(max(int(x0 - pad), 0), min(int(x1 + pad), w)),
    )


def side_by_side(before: np.ndarray, after: np.ndarray, zoom: int) -> np.ndarray:
    pair = np.concatenate([before, np.full((before.shape[0], 6, 3), 255, np.uint8), after], 1)
    return cv2.resize(pair, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LANCZOS4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pixels = sample_portrait()
    engine = RetouchEngine(StageCache())
    rows, cols = crop_face(engine, pixels)
    for op in RETOUCH_OPS:
        request = JobRequest(op=op, image_id="ab" * 32)
        after = engine.run(RunInput(request=request, seed=0, pixels=pixels), _Quiet())
        image = side_by_side(pixels[rows, cols], after[rows, cols], zoom=2)
        path = args.out / f"{op}.jpg"
        cv2.imwrite(
            str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        print(path)
    analysis = engine.analyse(None, pixels)
    h, w = pixels.shape[:2]
    mask = sample(analysis.mask, (w, h), Box(0, 0, w, h))
    tint = pixels.astype(np.float32) * (1 - 0.5 * mask[..., None]) + 0.5 * mask[..., None] * [
        255,
        60,
        160,
    ]
    overlay = side_by_side(pixels, np.clip(tint, 0, 255).astype(np.uint8), zoom=1)
    path = args.out / "skin_mask.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(path)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
