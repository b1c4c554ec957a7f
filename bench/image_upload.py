"""Upload and hash throughput of POST /v1/images, against a real sidecar process.

Measures, side by side in one run, for a 6000×4000 16-bit RGB portrait (the sample
portrait upscaled): the whole upload of an uncompressed TIFF and of raw pixels over
loopback (HTTP, decode, BLAKE3, atomic write with fsync, response), a re-upload of
stored pixels, and the pieces alone (BLAKE3 id, TIFF decode, store write).
Throughput is MB of pixel data (width·height·channels·2 bytes) per second.

    .venv/bin/python -m bench.image_upload            # full size, 7 runs
    .venv/bin/python -m bench.image_upload --quick    # small and fast (CI)
"""

from __future__ import annotations

import http.client
import io
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

from sidecar.cache import ImageStore, image_id
from sidecar.imaging import decode_image, read_header
from sidecar.imaging.pixels import Limits

from .report import arguments, machine, median, publish, timed
from .sidecar import Sidecar


def portrait(width: int, height: int) -> np.ndarray:
    from skimage import data

    face = data.astronaut().astype(np.float32) * 257.0
    big = cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC)
    # add sensor-like noise so the data is not smoother than a real 16-bit capture
    noise = np.random.default_rng(0).normal(0, 64, big.shape).astype(np.float32)
    return np.clip(big + noise, 0, 65535).astype(np.uint16)


def tiff_bytes(pixels: np.ndarray, deflate: bool = False) -> bytes:
    out = io.BytesIO()
    extra = {"compression": "zlib", "compressionargs": {"level": 1}} if deflate else {}
    tifffile.imwrite(out, pixels, photometric="rgb", **extra)
    return out.getvalue()


def post_times(
    sidecar: Sidecar, bodies: list[tuple[bytes, dict[str, str]]], expect: int, pause: float = 0.0
) -> list[float]:
    """POST each body on one keep-alive connection. http.client hands the body to the
    kernel in one sendall, like a native client (UXP's fetch, curl), so the figure is
    the sidecar's, not a Python client's."""
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.port, timeout=120)
    headers = {"Authorization": f"Bearer {sidecar.token}"}
    times = []
    for body, extra in bodies:
        time.sleep(pause)
        start = time.perf_counter()
        conn.request("POST", "/v1/images", body=body, headers={**headers, **extra})
        response = conn.getresponse()
        payload = response.read()
        times.append(time.perf_counter() - start)
        assert response.status == expect, (response.status, payload[:300])
    conn.close()
    return times


def variants(pixels: np.ndarray, runs: int) -> list[np.ndarray]:
    """`runs` copies that differ in one pixel each, so every upload is a new image."""
    out = []
    for i in range(runs):
        copy = pixels.copy()
        copy[-1, -1, 0] = i
        out.append(copy)
    return out


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "small image, few runs (CI)", argv)
    width, height = (600, 400) if args.quick else (6000, 4000)
    runs = args.runs or (3 if args.quick else 7)
    pause = 0.2 if args.quick else 1.5  # seconds between Applies

    pixels = portrait(width, height)
    mb = pixels.nbytes / 1e6
    copies = variants(pixels, runs * 4 + 1)
    tiff = {"Content-Type": "image/tiff"}
    raw = {
        "Content-Type": "application/octet-stream",
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": "3",
        "X-Image-Depth": "16",
    }
    warmup = [(tiff_bytes(copies[-1]), tiff)]
    tiffs = [(tiff_bytes(p), tiff) for p in copies[:runs]]
    burst = [(tiff_bytes(p), tiff) for p in copies[runs : 2 * runs]]
    raws = [(p.tobytes(), raw) for p in copies[2 * runs : 3 * runs]]
    deflated = [(tiff_bytes(p, deflate=True), tiff) for p in copies[3 * runs : 4 * runs]]

    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        root = Path(tmp)
        with Sidecar(root) as sidecar:
            post_times(sidecar, warmup, 201)  # not timed: the first upload warms the buffers
            # A retoucher's Applies are seconds apart: the previous disk write is done.
            # TIFF and raw alternate so that both meet the same machine state.
            tiff_times, raw_times, deflate_times = [], [], []
            for tiff_body, raw_body, zip_body in zip(tiffs, raws, deflated, strict=True):
                tiff_times += post_times(sidecar, [tiff_body], 201, pause=pause)
                raw_times += post_times(sidecar, [raw_body], 201, pause=pause)
                deflate_times += post_times(sidecar, [zip_body], 201, pause=pause)
            again_times = post_times(sidecar, tiffs, 200, pause=0.2)
            # A shoot dropped in at once: each upload overlaps the last one's disk write.
            burst_times = post_times(sidecar, burst, 201)

        store = ImageStore(root / "pieces")
        body = tiffs[0][0]
        hash_times = timed(lambda: image_id(pixels), runs)
        decode_times = timed(
            lambda: decode_image(body, read_header(body, "tiff", complete=True), Limits()), runs
        )
        write_iter = iter(variants(pixels, runs))

        def write_one() -> None:
            store.put(next(write_iter))
            store.flush()

        write_times = timed(write_one, runs)
        store.close()

    def row(name: str, times: list[float], note: str = "", rate: bool = True) -> list:
        t = median(times)
        return [name, f"{t * 1000:.1f}", f"{mb / t:.0f}" if rate else "n/a", note]

    rows = [
        row("POST TIFF, new image", tiff_times, "HTTP + decode + BLAKE3; disk write behind"),
        row("POST raw pixels, new image", raw_times, "HTTP + BLAKE3; disk write behind"),
        row(
            "POST TIFF (deflate), new image",
            deflate_times,
            f"{len(deflated[0][0]) / 1e6:.0f} MB file; strips inflated on 2 threads",
        ),
        row("POST TIFF, already stored", again_times, "HTTP + decode + BLAKE3, 200"),
        row(
            "POST TIFF, new images back to back",
            burst_times,
            "each overlaps the previous image's disk write",
        ),
        row("BLAKE3 image id alone", hash_times, "all cores"),
        row(
            "TIFF header + decode alone", decode_times, "uncompressed: a view, no copy", rate=False
        ),
        row("store write alone (to disk)", write_times, "temp + fsync + rename"),
    ]
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"{width}x{height} RGB 16-bit ({mb:.0f} MB of pixels), "
        f"TIFF {len(body) / 1e6:.0f} MB, sidecar in its own process",
        "target": "POST TIFF >= 500 MB/s of pixel data",
    }
    publish(
        args,
        "image_upload",
        "Image upload and hashing",
        ["what", "median ms", "MB/s", "note"],
        rows,
        meta,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
