"""The floors beside the benchmark's figures (bench/floors.py): each moves or computes
what its figure does, and the report shows it."""

from __future__ import annotations

import numpy as np
import tifffile

from bench import floors, loopback
from bench.naive.retouch import apply_full, load_engine
from bench.report import Figure, Options, Outcome
from bench.summary import markdown
from sidecar.engines.retouch import RetouchEngine

META = {"machine": "m", "mode": "quick", "seconds": 1.0, "date": "today"}


def test_a_plain_socket_moves_every_byte_each_run():
    body = memoryview(np.arange(3_000_000, dtype=np.uint8) % 251).cast("B")
    seconds = loopback.socket_seconds(body, 3)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)


async def test_sendfile_is_read_to_the_last_byte_by_the_clients_code():
    seconds = await loopback.sendfile_seconds(2_500_000, 2)  # raises on a short read
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


def test_the_ops_compute_alone_gives_the_products_pixels(portrait16):
    engine = RetouchEngine()
    try:
        alone = floors.compute(engine, portrait16)
    finally:
        engine.close()
    assert np.array_equal(alone, apply_full(load_engine(), portrait16, "beauty"))


async def test_figure_floors_are_attached_with_how_they_were_measured(portrait16, tmp_path):
    opts = Options(quick=True, runs=1)
    small = np.ascontiguousarray(portrait16[:200, :300])
    files = []
    for n in range(2):
        files.append(tmp_path / f"IMG_{n}.tif")
        tifffile.imwrite(files[-1], small, photometric="rgb")
    outcome = Outcome(
        figures=[
            Figure("1b", "full result", "ms", [900.0], [800.0], product_how="p", baseline_how="b"),
            Figure("6", "batch", "s", [9.0], [6.0], product_how="p", baseline_how="b"),
            Figure("4", "slider", "ms", [1.0], [900.0], product_how="p", baseline_how="b"),
        ]
    )
    await floors.apply_floor(outcome, opts, small)
    (await floors.batch_floor(files, opts)).attach(outcome.figures, "6")
    full, batch, slider = outcome.figures
    assert len(full.floor) == 1 and full.floor[0] > 0 and "compute alone" in full.floor_how
    assert len(batch.floor) == 1 and batch.floor[0] > 0 and "2 files" in batch.floor_how
    assert slider.floor == [] and slider.cell("floor") == "—"
    upload = floors.upload_floor(small, 2)
    assert len(upload.values) == 2 and "sendall" in upload.how
    text = markdown(outcome.figures, META)
    assert "| 4 | slider | 1.00 ms | 900 ms | — |" in text
    assert f"| 6 | batch | 9.00 s | 6.00 s | {batch.cell('floor')} |" in text
    assert "- **1b** product: p; baseline: b; floor: the op's compute alone" in text
    assert "- **4** product: p; baseline: b." in text
