"""Files on the sidecar's machine: `POST /v1/images/file` (an input read by the sidecar,
kept as a reference to the file, never copied into the store) and a job's `output`
(the result written by the sidecar as a file), against the real retouch engine."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
import tifffile
from helpers import astronaut_face, encode_jpeg, encode_png, encode_tiff, wait_until
from jobs_support import wait_for
from psd_tools import PSDImage
from psd_tools.api.layers import PixelLayer

from sidecar.api.keys import ENGINES, IMAGES
from sidecar.batch.outputs import result_format, upload_body, write_output
from sidecar.cache import ImageStore
from sidecar.imaging import Limits
from sidecar.imaging.encode import encode_file
from sidecar.imaging.files import decode_result
from sidecar.schema import Op

SIDE = 160


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return astronaut_face(SIDE)


@pytest.fixture
def files(tmp_path, face):
    """The same portrait as PNG, JPEG (turned by its EXIF), 16-bit TIFF and a document."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode_png(face))
    (folder / "b.jpg").write_bytes(encode_jpeg(face))
    (folder / "c.tif").write_bytes(encode_tiff(face.astype(np.uint16) * 257 + 3))
    doc = PSDImage.new("RGB", (SIDE, SIDE), depth=8)
    PixelLayer.fromarray(face, doc, name="Photo")
    doc.save(folder / "d.psd")
    return folder


async def take(client, auth, path) -> tuple[int, dict]:
    response = await client.post("/v1/images/file", json={"path": str(path)}, headers=auth)
    return response.status, await response.json()


async def test_a_file_gets_the_id_its_upload_gets_and_no_copy_is_stored(client, auth, app, files):
    for name in ("a.png", "b.jpg", "c.tif", "d.psd"):
        body, media_type = upload_body(files / name)
        uploaded = await client.post(
            "/v1/images", data=bytes(body), headers={**auth, "Content-Type": media_type}
        )
        expected = await uploaded.json()
        status, taken = await take(client, auth, files / name)
        assert status == 200 and taken == expected, name  # the upload stored it already

    other = files / "e.png"
    other.write_bytes(encode_png(np.full((20, 30, 3), 90, np.uint8)))
    status, taken = await take(client, auth, other)
    assert status == 201 and (taken["width"], taken["height"]) == (30, 20)
    assert (await take(client, auth, other))[0] == 200
    store: ImageStore = app[IMAGES]
    store.flush()
    assert not store.path_for(taken["image_id"]).exists()  # a reference, not a copy
    head = await client.head(f"/v1/images/{taken['image_id']}", headers=auth)
    assert head.status == 200


async def test_files_that_cannot_be_taken_get_stable_codes(client, auth, files, tmp_path):
    (files / "notes.png").write_text("not an image")
    (files / "big.png").write_bytes(encode_png(np.zeros((60, 50, 3), np.uint8)))
    PSDImage.new("CMYK", (32, 24)).save(files / "cmyk.psd")
    os.mkfifo(tmp_path / "pipe.png")  # would block whoever opens it for reading
    cases = {
        "relative.png": (422, "invalid_request"),
        str(files / "missing.png"): (404, "file_not_found"),
        str(files): (422, "file_unreadable"),
        str(tmp_path / "pipe.png"): (422, "file_unreadable"),
        str(files / "notes.png"): (422, "invalid_image"),
        str(files / "cmyk.psd"): (422, "unsupported_psd"),
    }
    for path, (status, code) in cases.items():
        response = await client.post("/v1/images/file", json={"path": path}, headers=auth)
        assert response.status == status, path
        assert (await response.json())["error"]["code"] == code, path
    response = await client.post("/v1/images/file", json={"path": str(files / "a.png")})
    assert response.status == 401


def test_the_file_limits_are_the_uploads(files, tmp_path):
    from sidecar.errors import ImageTooLarge, PayloadTooLarge

    store = ImageStore(tmp_path / "store")
    try:
        with pytest.raises(ImageTooLarge):
            store.register_file(files / "a.png", Limits(max_megapixels=0.01))
        with pytest.raises(PayloadTooLarge):
            store.register_file(files / "c.tif", Limits(), max_bytes=1000)
    finally:
        store.close()


def test_a_file_backed_image_is_read_again_and_goes_missing_when_its_file_changes(
    files, tmp_path, face
):
    root = tmp_path / "store"
    store = ImageStore(root)
    info, created = store.register_file(files / "a.png", Limits())
    key = info.image_id
    assert created and store.has(key)
    held = store.load(key)
    assert np.array_equal(held, face) and not held.flags.writeable  # handed out, not copied
    store.release(key)  # its jobs ended: out of memory, read from the file when asked
    again = store.load(key)
    assert np.array_equal(again, face) and again is not held
    store.close()

    restarted = ImageStore(root)  # the reference survives a restart
    assert restarted.has(key) and restarted.info(key) == info
    assert np.array_equal(restarted.load(key), face)
    restarted.release(key)
    (files / "a.png").write_bytes(encode_png(255 - face))  # another picture at that path
    assert not restarted.has(key) and restarted.load(key) is None
    assert not list(root.glob("??/*.ref"))  # the stale reference is gone
    restarted.close()


def test_cache_clear_takes_the_references_too(files, tmp_path):
    from sidecar.cache.usage import clear

    store = ImageStore(tmp_path / "store")
    store.register_file(files / "a.png", Limits())
    store.close()
    assert list((tmp_path / "store").glob("??/*.ref"))
    clear(tmp_path / "store")
    assert not list((tmp_path / "store").rglob("*.ref"))


def test_a_damaged_reference_is_a_miss_and_removed(files, tmp_path):
    store = ImageStore(tmp_path / "store")
    key = store.register_file(files / "c.tif", Limits())[0].image_id
    store.close()
    ref = next((tmp_path / "store").glob("??/*.ref"))
    ref.write_text('{"path": 7}')
    reopened = ImageStore(tmp_path / "store")
    assert not reopened.has(key) and not ref.exists()
    reopened.close()


async def output_job(client, auth, image_id: str, target, source, **extra) -> dict:
    body = {
        "op": "beauty",
        "image_id": image_id,
        "priority": "normal",
        "preview": {"progressive": False},
        "output": {"path": str(target), "source": str(source)},
        **extra,
    }
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 202, await response.text()
    return await response.json()


async def test_the_sidecar_writes_the_output_with_the_bytes_a_client_would(
    client, auth, app, files, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()  # the sidecar never makes an output's folder
    for name in ("a.png", "b.jpg", "c.tif", "d.psd"):
        image_id = (await take(client, auth, files / name))[1]["image_id"]
        created = await output_job(client, auth, image_id, out / name, files / name)
        done = await wait_for(client, auth, created["job_id"], timeout=60)
        assert done["state"] == "done", done
        target = out / name
        fetched = await client.get(
            f"/v1/jobs/{created['job_id']}/result",
            params={"format": result_format(target)},
            headers=auth,
        )
        by_client = tmp_path / "client" / name
        write_output(by_client, await fetched.read(), files / name, "beauty")
        assert target.read_bytes() == by_client.read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.tif", "d.psd"]

    # the same request into another folder: written from the result cache
    image_id = (await take(client, auth, files / "c.tif"))[1]["image_id"]
    again = await output_job(client, auth, image_id, tmp_path / "again.tif", files / "c.tif")
    assert again["cached"] is True
    assert (await wait_for(client, auth, again["job_id"]))["state"] == "done"
    assert (tmp_path / "again.tif").read_bytes() == (out / "c.tif").read_bytes()


async def test_an_output_that_cannot_be_written_fails_with_write_failed(
    client, auth, files, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the output's folder should be")
    image_id = (await take(client, auth, files / "a.png"))[1]["image_id"]
    created = await output_job(client, auth, image_id, blocker / "out.png", files / "a.png")
    failed = await wait_for(client, auth, created["job_id"], timeout=60)
    assert failed["state"] == "failed" and failed["error"]["code"] == "write_failed"
    assert failed["error"]["details"]["path"] == str(blocker / "out.png")
    # its result stayed cached: asked again with a writable path, it is written from it
    again = await output_job(client, auth, image_id, tmp_path / "out.png", files / "a.png")
    assert again["cached"] is True
    assert (await wait_for(client, auth, again["job_id"]))["state"] == "done"
    assert cv2.imread(str(tmp_path / "out.png")).shape == (SIDE, SIDE, 3)


@pytest.mark.parametrize(
    "output",
    [
        {"path": "relative.png"},
        {"path": "/tmp/out.gif"},
        {"path": "/tmp/out.psd", "source": "/tmp/in.tif"},
        {"path": "/tmp/out.tif", "source": "/tmp/out.tif"},
    ],
)
async def test_an_output_the_contract_refuses_is_422(client, auth, files, output):
    image_id = (await take(client, auth, files / "a.png"))[1]["image_id"]
    body = {"op": "beauty", "image_id": image_id, "output": output}
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_request"


async def test_batch_jobs_leave_no_stages_in_memory_and_the_panels_keep_theirs(
    client, auth, app, files, tmp_path
):
    cache = app[ENGINES][Op.beauty].cache
    image_id = (await take(client, auth, files / "a.png"))[1]["image_id"]
    for priority, name in (("normal", "batch.png"), ("active", "panel.png")):
        created = await output_job(
            client, auth, image_id, tmp_path / name, files / "a.png", priority=priority,
            params={"strength": 0.5 if priority == "normal" else 0.6},
            preview={"progressive": priority == "active"},  # the panel's Apply shows it
        )  # fmt: skip
        assert (await wait_for(client, auth, created["job_id"], timeout=60))["state"] == "done"
        if priority == "normal":  # analysis and plan: on disk only, once the worker lets go
            wait_until(lambda: cache.used_bytes == 0, 10, what="the stages out of memory")
            disk_hits = cache.disk_hits
    assert cache.disk_hits > disk_hits  # the panel's job started from the disk tier
    assert cache.used_bytes > 0  # and its analysis and plan stay in memory
    store: ImageStore = app[IMAGES]
    wait_until(lambda: store._file_refs.held(image_id) is None, 10, what="the input let go")


async def test_an_analysis_worked_out_ahead_leaves_memory_when_the_images_job_ends(
    client, auth, app, files, tmp_path
):
    cache = app[ENGINES][Op.beauty].cache
    image_id = (await take(client, auth, files / "a.png"))[1]["image_id"]
    for attempt, name in enumerate(("first.png", "again.png")):  # run, then from the cache
        tone = await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)
        assert tone.status == 200
        assert cache.used_bytes > 0  # the analysis, ready for the job
        created = await output_job(client, auth, image_id, tmp_path / name, files / "a.png")
        assert created["cached"] is bool(attempt)
        assert (await wait_for(client, auth, created["job_id"], timeout=60))["state"] == "done"
        # dropped as the job ends, just after its state says done (another thread)
        wait_until(lambda: cache.used_bytes == 0, 10, what="the analysis out of memory")


def test_a_tiff_result_is_uncompressed_with_its_alpha_unassociated_and_reads_back_as_it_was():
    rng = np.random.default_rng(5)
    for dtype in (np.uint8, np.uint16):
        for channels in (3, 4):
            top = np.iinfo(dtype).max
            pixels = rng.integers(0, top, (23, 41, channels), dtype=dtype)
            data = bytes(encode_file(pixels, "tiff"))
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = tif.pages.first
                assert (page.compression, page.photometric) == (1, 2)  # none, RGB
                assert page.extrasamples == ((2,) if channels == 4 else ())  # unassociated
                assert np.array_equal(page.asarray(), pixels)
            assert np.array_equal(decode_result(data), pixels)
