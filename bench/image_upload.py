"""Figures 7 and 8, and the upload table, on a 6000×4000 portrait.

7. Content hashing: the product's image id (BLAKE3 of every pixel byte, all cores) of a
   24 MP RGBA 8-bit image against the baseline's key (SHA-256 of the first 64 KB); then
   shown on both servers: a one-pixel edit on the cheek, far past the first 64 KB. The
   product gives the edited image a new id and runs the Apply; the baseline's key does
   not change, so its cache answers with the result of the unedited image.
8. Upload of 24 MP raw 16-bit pixels over loopback, from pixels in the client's memory to
   the response: the product's POST /v1/images (the raw bytes as the body) against the
   baseline's base64 in JSON (the client's encoding is counted: the design needs it).

The table `image_upload.md` (product only): TIFF, raw, deflate-TIFF uploads, a re-upload,
uploads back to back, the pieces alone (BLAKE3, TIFF decode, store write), and the raw
result sent back (GET …/result?format=raw) with the sidecar's CPU time for it.

Figure 8's floor (bench/floors.py): one sendall of the same bytes on a plain loopback
socket to a reader that drains them.

The event loop never blocks: the timed uploads (http.client, one sendall per body, like
a native client), TIFF and base64 encoding, hashing and the store writes run in a
thread, so the WebSockets stay answered (the sidecar closes one that misses its 20 s
heartbeat). Jobs are followed with sidecar.client's JobTracker (bench/tracked.py),
which reopens a closed stream and reads the jobs' states again; a sidecar that exits
fails the wait at once, one that stops answering within 15 s, and every wait has a time
limit, each with the end of the sidecar's log.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from sidecar.cache import ImageStore, image_id
from sidecar.client import raw_pixel_headers
from sidecar.imaging import decode_image, read_header
from sidecar.imaging.pixels import Limits

from . import floors
from .harness import Harness, naive_upload_body, portrait, variant
from .naive.cache import PREFIX_BYTES, image_key
from .report import Detail, Figure, Options, Outcome, machine, median, number, timed
from .sidecar import NaiveServer, Sidecar
from .tracked import Jobs

CHEEK = (0.25, 0.44)  # (y, x) as shares of the frame: inside the skin mask


def process_cpu_s(pid: int) -> float:
    """CPU time of a process so far, all its threads, in seconds (Linux: utime + stime
    from /proc, 10 ms steps; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return math.nan


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
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.port, timeout=300)
    times = []
    for body, extra in bodies:
        time.sleep(pause)
        start = time.perf_counter()
        conn.request("POST", "/v1/images", body=body, headers={**sidecar.auth, **extra})
        response = conn.getresponse()
        payload = response.read()
        times.append(time.perf_counter() - start)
        assert response.status == expect, (response.status, payload[:300])
    conn.close()
    return times


def naive_post_time(naive: NaiveServer, pixels: np.ndarray) -> float:
    """From pixels in memory to the naive server's answer, encoding included."""
    conn = http.client.HTTPConnection("127.0.0.1", naive.port, timeout=300)
    start = time.perf_counter()
    body = naive_upload_body(pixels)
    conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    seconds = time.perf_counter() - start
    assert response.status == 200, (response.status, payload[:300])
    conn.close()
    return seconds


def upload_figure(h: Harness, opts: Options, pixels: np.ndarray, pause: float) -> tuple:
    runs = opts.n(5, 2)
    copies = [variant(pixels, n) for n in range(runs * 2)]
    raw, naive = [], []
    for run in range(runs):
        body = memoryview(copies[run]).cast("B")  # the pixels themselves, no copy
        raw += post_times(h.product, [(body, raw_pixel_headers(pixels))], 201, pause=pause)
        time.sleep(pause)
        naive.append(naive_post_time(h.naive, copies[runs + run]))
    return raw, naive


def hashing_figures(opts: Options, width: int, height: int) -> list[Figure]:
    runs = opts.n(7, 3)
    rgba = (portrait(width, height, alpha=True) >> 8).astype(np.uint8)
    gb = rgba.nbytes / 1e9
    image_id(rgba), image_key(rgba)  # warm the hashers (threads, first call)
    product = timed(lambda: image_id(rgba), runs)
    baseline = timed(lambda: image_key(rgba), runs)
    where = machine()
    size = f"{width}×{height} RGBA 8-bit, {rgba.nbytes / 1e6:.0f} MB"
    return [
        Figure(
            "7",
            f"Content hashing throughput ({size})",
            "GB/s",
            [gb / t for t in product],
            [PREFIX_BYTES / 1e9 / t for t in baseline],
            lower_is_better=False,
            product_how="BLAKE3 image id of every pixel byte (all cores), in the bench process",
            baseline_how="SHA-256 of the first 64 KB (its throughput over the bytes it reads)",
            machine=where,
        ),
        Figure(
            "7b",
            f"Time to key one image ({size})",
            "ms",
            [t * 1000 for t in product],
            [t * 1000 for t in baseline],
            product_how="BLAKE3 of all the pixels",
            baseline_how="SHA-256 of the first 64 KB only",
            machine=where,
            note="the baseline is quicker because it reads 0.07 % of the image; 7c shows the cost",
        ),
    ]


def wrong_pixels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(np.any(a != b, axis=2)))


def edited_pair(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An image, the same with one black pixel on the cheek, and that pixel's byte offset."""
    height, width = pixels.shape[:2]
    y, x = int(CHEEK[0] * height), int(CHEEK[1] * width)
    original = variant(pixels, 900)
    edited = original.copy()
    edited[y, x] = 0  # one black pixel
    return original, edited, (y * width + x) * pixels.shape[2] * pixels.dtype.itemsize


async def edit_figure(h: Harness, jobs: Jobs, pixels: np.ndarray) -> tuple[Figure, str]:
    """A one-pixel edit on the cheek, shown on both servers; with the id of the product's
    job on the edited image (its result serves the table's result rows)."""
    height, width = pixels.shape[:2]
    original, edited, offset = await asyncio.to_thread(edited_pair, pixels)
    assert offset > PREFIX_BYTES
    ids = [await h.upload(original), await h.upload(edited)]
    product = [await jobs.apply({"op": "beauty", "image_id": i}) for i in ids]
    results = [
        np.frombuffer(await h.result(t.job_id), pixels.dtype).reshape(pixels.shape) for t in product
    ]
    keys = [await h.naive_upload(original)]
    first = await h.naive_apply(keys[0])
    keys.append(await h.naive_upload(edited))
    second = await h.naive_apply(keys[1])
    wrong = await asyncio.to_thread(wrong_pixels, second.pixels(), results[1])
    product_text = (
        "noticed: new id, the Apply ran" if ids[0] != ids[1] and not product[1].cached else "MISSED"
    )
    stale = keys[0] == keys[1] and second.cached and second.body == first.body
    baseline_text = (
        f"missed: same key, cached result of the unedited image returned ({wrong} px wrong)"
        if stale
        else "noticed"
    )
    figure = Figure(
        "7c",
        f"A one-pixel edit {offset / 1e6:.1f} MB into the image ({width}×{height})",
        "",
        [],
        [],
        product_text=product_text,
        baseline_text=baseline_text,
        product_how="upload both images, Apply beauty on each",
        baseline_how="upload both, Apply on each: the second is a cache hit under the same key",
        machine=machine(),
        note=f"the edit is at byte {offset:,}, past the {PREFIX_BYTES:,} bytes the baseline"
        " hashes; px wrong = pixels of the returned result that differ from the product's"
        " result for the edited image",
    )
    return figure, product[1].job_id


async def result_rows(h: Harness, opts: Options, job_id: str, nbytes: int) -> list[list]:
    """GET …/result?format=raw of a done full-size result: the time to the last byte in
    this client, and the CPU time the sidecar process spent on it."""
    pid = h.product.proc.pid if h.product.proc is not None else -1
    await h.result(job_id)  # warm: the connection, the file in the page cache
    seconds, cpu = [], []
    for _ in range(opts.n(5, 2)):
        await asyncio.sleep(opts.settle)  # what the sidecar did before is not counted
        before = process_cpu_s(pid)
        start = time.perf_counter()
        body = await h.result(job_id)
        seconds.append(time.perf_counter() - start)
        await asyncio.sleep(0.2)  # its last writes and closes, counted
        cpu.append(process_cpu_s(pid) - before)
        assert len(body) == nbytes, (len(body), nbytes)
        del body
    t = median(seconds)
    cpu_text = "n/a (no /proc)" if math.isnan(median(cpu)) else f"{median(cpu):.3f} CPU-s"
    return [
        [
            "GET raw result (from the stored file)",
            number(t * 1000),
            number(nbytes / 1e6 / t),
            f"sidecar process: {cpu_text} per GET (median; to 0.2 s past the last byte)",
        ]
    ]


def upload_table(root: Path, h: Harness, opts: Options, pixels: np.ndarray, pause: float):
    runs = opts.n(5, 2)
    mb = pixels.nbytes / 1e6
    copies = [variant(pixels, 100 + n) for n in range(runs * 3 + 1)]
    tiff = {"Content-Type": "image/tiff"}
    tiffs = [(tiff_bytes(p), tiff) for p in copies[:runs]]
    burst = [(tiff_bytes(p), tiff) for p in copies[runs : 2 * runs]]
    deflated = [(tiff_bytes(p, deflate=True), tiff) for p in copies[2 * runs : 3 * runs]]
    post_times(h.product, [(tiff_bytes(copies[-1]), tiff)], 201)  # warm the buffers
    tiff_times, deflate_times = [], []
    for tiff_body, zip_body in zip(tiffs, deflated, strict=True):
        tiff_times += post_times(h.product, [tiff_body], 201, pause=pause)
        deflate_times += post_times(h.product, [zip_body], 201, pause=pause)
    again_times = post_times(h.product, tiffs, 200, pause=0.2)
    burst_times = post_times(h.product, burst, 201)  # each overlaps the last one's write

    store = ImageStore(root / "pieces")
    body = tiffs[0][0]
    hash_times = timed(lambda: image_id(pixels), runs)
    decode_times = timed(
        lambda: decode_image(body, read_header(body, "tiff", complete=True), Limits()), runs
    )
    write_iter = iter([variant(pixels, 200 + n) for n in range(runs)])

    def write_one() -> None:
        store.put(next(write_iter))
        store.flush()

    write_times = timed(write_one, runs)
    store.close()

    def row(name: str, times: list[float], note: str = "", rate: bool = True) -> list:
        t = median(times)
        return [name, number(t * 1000), number(mb / t) if rate else "n/a", note]

    return [
        row("POST TIFF, new image", tiff_times, "HTTP + decode + BLAKE3; disk write behind"),
        row(
            "POST TIFF (deflate), new image",
            deflate_times,
            f"{len(deflated[0][0]) / 1e6:.0f} MB file; strips inflated on 2 threads",
        ),
        row("POST TIFF, already stored", again_times, "HTTP + decode + BLAKE3, 200"),
        row("POST TIFF, new images back to back", burst_times, "each overlaps a disk write"),
        row("BLAKE3 image id alone", hash_times, "all cores"),
        row("TIFF header + decode alone", decode_times, "uncompressed: a view", rate=False),
        row("store write alone (to disk)", write_times, "temp + fsync + rename"),
    ]


async def run(opts: Options) -> Outcome:
    width, height = (600, 400) if opts.quick else (6000, 4000)
    pause = 0.1 if opts.quick else 1.5  # a retoucher's uploads are seconds apart
    pixels = await asyncio.to_thread(portrait, width, height)
    mb = pixels.nbytes / 1e6
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        async with Harness(Path(tmp)) as h, Jobs(h) as jobs:
            warm = pixels[:256, :256].copy()
            await jobs.apply({"op": "beauty", "image_id": await h.upload(warm)})
            await h.naive_apply(await h.naive_upload(warm))
            # blocking work (http.client, TIFF encoding, hashing, fsync) in a thread
            raw, naive = await asyncio.to_thread(upload_figure, h, opts, pixels, pause)
            edit, edited_job = await edit_figure(h, jobs, pixels)
            rows = await asyncio.to_thread(upload_table, Path(tmp), h, opts, pixels, pause)
            rows += await result_rows(h, opts, edited_job, pixels.nbytes)
            reconnects = jobs.reconnects
    hashing = await asyncio.to_thread(hashing_figures, opts, width, height)
    floor = await asyncio.to_thread(floors.upload_floor, pixels, opts.n(5, 2))
    rows.insert(
        1,
        [
            "POST raw pixels, new image",
            number(median(raw) * 1000),
            number(mb / median(raw)),
            "HTTP + BLAKE3; disk write behind",
        ],
    )
    where = machine()
    figures = [
        *hashing,
        edit,
        Figure(
            "8",
            f"Upload of {width}×{height} raw 16-bit pixels over loopback ({mb:.0f} MB)",
            "MB/s",
            [mb / t for t in raw],
            [mb / t for t in naive],
            lower_is_better=False,
            product_how="POST /v1/images, the raw bytes as the body (201: received, hashed,"
            " held; the disk write follows)",
            baseline_how="base64 in JSON: encode, POST /upload, the server decodes and saves",
            machine=where,
            note=f"{number(median(raw) * 1000)} ms against {number(median(naive) * 1000)} ms",
            floor=floor.values,
            floor_how=floor.how,
        ),
    ]
    meta = {
        "machine": where,
        "runs": opts.n(5, 2),
        "input": f"{width}x{height} RGB 16-bit ({mb:.0f} MB of pixels), sidecar in its own process",
        "target": "POST TIFF >= 500 MB/s of pixel data",
        "event_stream_reconnects": reconnects,  # 0 unless the sidecar closed the stream
    }
    header = ["what", "median ms", "MB/s", "note"]
    detail = Detail("image_upload", "Image upload and hashing", header, rows, meta)
    return Outcome(figures=figures, details=[detail])
