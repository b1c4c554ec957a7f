"""A result's rows written into the store while the rest of it renders: the stored file
is the one a plain write makes, whatever order the rows came in, whatever went wrong,
and nothing is left behind by a run that does not keep its result."""

from __future__ import annotations

import numpy as np
import pytest
from jobs_support import upload, wait_for
from retouch_support import RecordingContext, run_op

from sidecar.api.keys import IMAGES
from sidecar.cache import ImageStore, image_id
from sidecar.cache import result_file as result_file_mod
from sidecar.cache.atomic import TEMP_PREFIX
from sidecar.engines import Preempted, RunInput
from sidecar.engines.retouch import RetouchResume, pyramid, tiles
from sidecar.jobs.steps import ResultRows, Run


def files(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def temps(root) -> list[str]:
    return [name for name in files(root) if name.startswith(TEMP_PREFIX)]


@pytest.fixture(name="pixels")
def pixels_fixture() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 65536, (40, 30, 3), dtype=np.uint16)


def plain_file(tmp_path, pixels) -> bytes:
    store = ImageStore(tmp_path / "plain")
    info, _ = store.put(pixels)
    store.close()
    return store.path_for(info.image_id).read_bytes()


def test_rows_in_any_order_make_the_file_a_plain_write_makes(tmp_path, pixels):
    store = ImageStore(tmp_path / "store")
    ahead = store.result_file()
    for y0, y1 in [(20, 30), (0, 10), (30, 40), (10, 20)]:
        ahead.rows(pixels, y0, y1)
    info, created = store.put(pixels, written=ahead)
    store.flush()
    assert created and info.image_id == image_id(pixels)
    assert store.path_for(info.image_id).read_bytes() == plain_file(tmp_path, pixels)
    assert files(tmp_path / "store") == [f"{info.image_id}.img"]
    np.testing.assert_array_equal(store.load(info.image_id), pixels)


def test_rows_never_given_are_written_at_the_finish(tmp_path, pixels):
    store = ImageStore(tmp_path / "store")
    ahead = store.result_file()
    ahead.rows(pixels, 10, 20)
    info, _ = store.put(pixels, written=ahead)
    store.flush()
    assert store.path_for(info.image_id).read_bytes() == plain_file(tmp_path, pixels)


def test_rows_of_another_array_are_all_written_again(tmp_path, pixels):
    store = ImageStore(tmp_path / "store")
    other = pixels[::-1].copy()  # same shape, other memory and content
    ahead = store.result_file()
    ahead.rows(other, 0, 40)
    info, _ = store.put(pixels, written=ahead)
    store.flush()
    assert store.path_for(info.image_id).read_bytes() == plain_file(tmp_path, pixels)
    assert temps(tmp_path / "store") == []


def test_a_discarded_file_and_one_for_pixels_already_stored_leave_nothing(tmp_path, pixels):
    store = ImageStore(tmp_path / "store")
    ahead = store.result_file()
    ahead.rows(pixels, 0, 20)
    ahead.discard()
    ahead.rows(pixels, 20, 40)  # after the discard: not written
    store.flush()
    assert files(tmp_path / "store") == []
    info, _ = store.put(pixels)
    store.flush()
    again = store.result_file()
    again.rows(pixels, 0, 40)
    assert store.put(pixels, written=again)[1] is False
    store.flush()
    assert files(tmp_path / "store") == [f"{info.image_id}.img"]


def test_a_failed_write_ahead_falls_back_to_a_plain_write(tmp_path, pixels, monkeypatch):
    def full_disk(fd):
        raise OSError(28, "No space left on device")

    store = ImageStore(tmp_path / "store")
    ahead = store.result_file()
    with monkeypatch.context() as patch:
        patch.setattr(result_file_mod, "_sync", full_disk)
        ahead.rows(pixels, 0, 20)
        store.flush()
    assert temps(tmp_path / "store") == []  # the broken file is gone at once
    ahead.rows(pixels, 20, 40)  # ignored: the finish writes everything
    info, _ = store.put(pixels, written=ahead)
    store.flush()
    assert store.path_for(info.image_id).read_bytes() == plain_file(tmp_path, pixels)


def test_the_tiled_final_tells_each_band_once_as_it_is_finished(engine, portrait, monkeypatch):
    monkeypatch.setattr(tiles, "TILE", 128)  # 512²: 4 bands of 4 tiles
    told: list[tuple[int, int, np.ndarray]] = []

    def on_rows(result, y0, y1):
        told.append((y0, y1, result[y0:y1].copy()))  # as they are when told

    plain = run_op(engine, portrait, "beauty")
    resume = RetouchResume()
    with pytest.raises(Preempted):  # a few tiles into the final
        run_op(engine, portrait, "beauty", ctx=RecordingContext(preempt_at=10), resume=resume)
    before = resume.final.tiles_done
    assert 0 < len(before) < 16
    # the resumed run tells the bands finished before it at its start, then the others
    result = run_op(engine, portrait, "beauty", resume=resume, on_rows=on_rows)
    assert np.array_equal(result, plain)
    assert sorted((y0, y1) for y0, y1, _ in told) == [(0, 128), (128, 256), (256, 384), (384, 512)]
    for y0, y1, rows in told:
        assert np.array_equal(rows, plain[y0:y1])


def test_a_single_band_is_left_to_the_plain_write(engine, portrait):
    told = []
    run_op(engine, portrait, "beauty", on_rows=lambda *args: told.append(args))
    assert told == []  # 512² is one band of 1024 px tiles


async def test_a_job_stores_its_result_rows_ahead_with_the_same_bytes(
    app, client, auth, portrait, monkeypatch
):
    monkeypatch.setattr(tiles, "TILE", 128)
    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)
    bands = []
    real_rows = result_file_mod.ResultFile.rows

    def counted(self, pixels, y0, y1):
        bands.append((y0, y1))
        real_rows(self, pixels, y0, y1)

    monkeypatch.setattr(result_file_mod.ResultFile, "rows", counted)
    image = await upload(client, auth, portrait)
    response = await client.post("/v1/jobs", json={"op": "beauty", "image_id": image}, headers=auth)
    job_id = (await response.json())["job_id"]
    status = await wait_for(client, auth, job_id)
    assert status["state"] == "done"
    assert sorted(bands) == [(0, 128), (128, 256), (256, 384), (384, 512)]
    raw = await (await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)).read()
    result_id = image_id(np.frombuffer(raw, np.uint8).reshape(portrait.shape))
    store = app[IMAGES]
    assert store.path_for(result_id).read_bytes()[32:] == raw  # the header, then the pixels
    assert temps(store.root) == []


def test_a_run_that_ends_without_keeping_its_result_leaves_no_file(tmp_path, pixels):
    store = ImageStore(tmp_path / "store")
    rows = ResultRows(store)
    rows(pixels, 0, 20)  # a band, then the run is cancelled, fails or is pre-empted
    store.flush()
    assert len(temps(tmp_path / "store")) == 1
    run = Run(job=None, engine=None, input=RunInput(request=None, seed=0), steps=None, rows=rows)
    run.give_back_input(store.buffers)
    store.flush()
    assert files(tmp_path / "store") == []
    assert rows.take() is None
