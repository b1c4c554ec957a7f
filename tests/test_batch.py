"""`retouch-sidecar apply` and `batch`, run as a user runs them (through `main`), against
the real sidecar: started in-process when none answers, or one already running."""

from __future__ import annotations

import _thread
import asyncio
import time

import cv2
import numpy as np
import pytest
import tifffile
from helpers import astronaut_face, encode_jpeg, encode_png, encode_tiff, free_port

import sidecar.jobs.outputs
from sidecar.api.keys import SCHEDULER
from sidecar.cache.atomic import TEMP_PREFIX
from sidecar.cli import build_app, main
from sidecar.client import SidecarClient, serve_in_process
from sidecar.jobs import JobStore
from sidecar.settings import Settings

SIDE = 192
FACE = (slice(45, 110), slice(50, 105))  # rows, columns of the face's skin in the crop
BELOW_FACE = slice(130, None)  # suit and flag: no skin, so the exact bits stay


@pytest.fixture(scope="module")
def crop8() -> np.ndarray:
    return astronaut_face(SIDE)


@pytest.fixture
def shoot(tmp_path, crop8):
    """A folder of one portrait as PNG 8-bit, PNG 16-bit with alpha, TIFF 16-bit, JPEG."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    crop16 = crop8.astype(np.uint16) * 257 + 3
    alpha = np.linspace(1000, 65000, SIDE * SIDE).astype(np.uint16).reshape(SIDE, SIDE)
    inputs = {
        "a.png": crop8,
        "b16.png": np.dstack([crop16, alpha]),
        "c.tif": crop16,
        "d.jpg": crop8,
    }
    (folder / "a.png").write_bytes(encode_png(inputs["a.png"]))
    (folder / "b16.png").write_bytes(encode_png(inputs["b16.png"]))
    (folder / "c.tif").write_bytes(encode_tiff(inputs["c.tif"]))
    (folder / "d.jpg").write_bytes(encode_jpeg(inputs["d.jpg"]))
    (folder / "notes.txt").write_text("not an image and not picked up")
    return folder, inputs


def batch(in_dir, out_dir, *extra: str, port: int | None = None) -> int:
    args = ["batch", str(in_dir), str(out_dir), "--op", "beauty", *extra]
    return main([*args, "--port", str(port or free_port())])


def read(path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, path
    code = cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, code)


def test_a_batch_retouches_each_image_in_its_own_format_and_depth(shoot, tmp_path, capsys):
    folder, inputs = shoot
    out = tmp_path / "out"
    assert batch(folder, out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b16.png", "c.tif", "d.jpg"]
    assert "summary: 4 images: 4 done, 0 cached, 0 skipped, 0 failed" in capsys.readouterr().out

    for name in ("a.png", "b16.png", "c.tif"):
        original, result = inputs[name], read(out / name)
        assert result.shape == original.shape and result.dtype == original.dtype, name
        changed = np.any(result != original, axis=2)
        # the box also holds eyes, brows and lips, which stay
        assert changed[FACE].mean() > 0.4, f"{name}: the face was not retouched"
        assert not changed[BELOW_FACE].any(), f"{name}: pixels outside the skin changed"
    assert np.array_equal(read(out / "b16.png")[..., 3], inputs["b16.png"][..., 3])
    with tifffile.TiffFile(out / "c.tif") as tiff:
        assert (tiff.pages[0].shape, tiff.pages[0].dtype) == ((SIDE, SIDE, 3), np.uint16)

    jpeg = read(out / "d.jpg")
    assert (out / "d.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert jpeg.shape == (SIDE, SIDE, 3) and jpeg.dtype == np.uint8
    face_change = np.abs(jpeg[FACE].astype(int) - read(folder / "d.jpg")[FACE]).mean()
    assert 0 < face_change < 10


def test_a_rerun_skips_newer_outputs_and_the_result_cache_answers_the_rest(shoot, tmp_path, capsys):
    folder, _ = shoot
    out = tmp_path / "out"
    assert batch(folder, out) == 0
    capsys.readouterr()

    assert batch(folder, out) == 0
    text = capsys.readouterr().out
    assert "4 images: 0 done, 0 cached, 4 skipped, 0 failed" in text
    assert "sidecar:" not in text  # nothing to do: no sidecar was needed

    first = (out / "a.png").read_bytes()
    (out / "a.png").unlink()
    (out / "c.tif").unlink()
    assert batch(folder, out) == 0
    assert "4 images: 0 done, 2 cached, 2 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "a.png").read_bytes() == first


def test_a_file_that_is_not_an_image_fails_and_the_others_are_written(shoot, tmp_path, capsys):
    folder, _ = shoot
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    out = tmp_path / "out"
    assert batch(folder, out) == 1
    text = capsys.readouterr().out
    assert "failed   broken.png: invalid_image" in text
    assert "5 images: 4 done, 0 cached, 0 skipped, 1 failed [broken.png: invalid_image]" in text
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b16.png", "c.tif", "d.jpg"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["batch", "missing-dir", "{out}", "--op", "beauty"], "is not a folder"),
        (["batch", "{shoot}", "{out}", "--op", "blur"], "unknown op 'blur'"),
        (["batch", "{shoot}", "{out}", "--op", "beauty", "--param", "strength"], "bad --param"),
        (["batch", "{shoot}", "{out}", "--op", "beauty", "--intensity", "2"], "outside 0..1"),
        (["batch", "{shoot}", "{out}", "--op", "beauty", "--hero", "z.png"], "--hero z.png"),
        (["apply", "{shoot}/notes.txt", "{out}.png", "--op", "color"], "expected .png"),
        (["batch", "{shoot}", "{out}", "--op", "beauty", "--param", "foo=1"], "foo: Extra inputs"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(shoot, tmp_path, capsys, argv, message):
    folder, _ = shoot
    paths = {"{shoot}": str(folder), "{out}": str(tmp_path / "out")}
    for placeholder, path in paths.items():
        argv = [arg.replace(placeholder, path) for arg in argv]
    assert main([*argv, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("retouch-sidecar:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_apply_retouches_one_file(shoot, tmp_path, capsys):
    folder, inputs = shoot
    target = tmp_path / "single" / "result.png"
    argv = ["apply", str(folder / "b16.png"), str(target), "--op", "color"]
    assert main([*argv, "--param", "strength=0.5", "--port", str(free_port())]) == 0
    result = read(target)
    assert result.shape == (SIDE, SIDE, 4) and result.dtype == np.uint16
    assert np.any(result[FACE] != inputs["b16.png"][FACE])
    assert "1 images: 1 done" in capsys.readouterr().out


def test_an_interrupted_batch_leaves_whole_outputs_only_and_no_queued_jobs(
    shoot, tmp_path, monkeypatch, capsys
):
    folder, _ = shoot
    out = tmp_path / "out"
    real_write = sidecar.jobs.outputs.atomic_write
    written = []

    def half_then_interrupt(chunks):
        data = b"".join(chunks)
        yield data[: len(data) // 2]
        _thread.interrupt_main()  # Ctrl-C halfway through the second output's bytes
        yield data[len(data) // 2 :]

    def write_then_interrupt(path, chunks, **kwargs):
        real_write(path, half_then_interrupt(chunks) if written else chunks, **kwargs)
        written.append(path.name)

    # the sidecar (in this process) writes the outputs, on a thread of its own
    monkeypatch.setattr(sidecar.jobs.outputs, "atomic_write", write_then_interrupt)
    assert batch(folder, out) == 130
    assert "interrupted" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(written) and names[:2] == ["a.png", "b16.png"]
    for name in names:  # whole files: the one being written when Ctrl-C came too
        assert read(out / name).shape[:2] == (SIDE, SIDE), name
    assert not list(out.glob(f"{TEMP_PREFIX}*"))
    store = JobStore(Settings().jobs_db)  # the in-process sidecar's queue, on disk
    try:
        assert list(store.unfinished()) == []  # cancelled: nothing resumes on the next start
    finally:
        store.close()


@pytest.mark.parametrize(
    ("name", "how"),
    [("b16.png", "atomic_write"), ("c.tif", "atomic_fill")],  # TIFFs go straight to the file
)
def test_an_output_the_disk_refuses_fails_that_image_only_and_leaves_no_temp(
    shoot, tmp_path, monkeypatch, capsys, name, how
):
    folder, inputs = shoot
    out = tmp_path / "out"
    real = getattr(sidecar.jobs.outputs, how)
    full = [True]

    def cut_short_chunks(chunks):
        yield b"\x89PNG"
        raise OSError(28, "No space left on device")

    def cut_short_fill(file):
        file.write(b"II*\x00")
        raise OSError(28, "No space left on device")

    def refuse(path, what, **kwargs):
        if full[0] and path.name == name:  # the temp file is cut short, as a full disk does
            what = cut_short_fill if how == "atomic_fill" else cut_short_chunks(what)
        real(path, what, **kwargs)

    monkeypatch.setattr(sidecar.jobs.outputs, how, refuse)
    assert batch(folder, out) == 1
    text = capsys.readouterr().out
    assert f"failed   {name}: write_failed" in text and "No space left on device" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(set(inputs) - {name})

    full[0] = False  # the disk has room again: the rerun writes it from the cache
    assert batch(folder, out) == 0
    assert "4 images: 0 done, 1 cached, 3 skipped, 0 failed" in capsys.readouterr().out
    assert read(out / name).shape == inputs[name].shape


async def test_a_running_sidecar_is_used_and_heroes_start_first(shoot, tmp_path, settings, capsys):
    folder, _ = shoot
    app = build_app(settings)  # same config dir as the command below: the same token
    async with serve_in_process(app) as port:
        argv = ["--hero", "d.jpg", "--config-dir", str(settings.config_dir)]
        started = time.monotonic()
        code = await asyncio.to_thread(batch, folder, tmp_path / "out", *argv, port=port)
        assert code == 0 and time.monotonic() - started < 30

        jobs = {job.request.document_id: job.job_id for job in app[SCHEDULER].jobs.values()}
        assert sorted(jobs) == ["a.png", "b16.png", "c.tif", "d.jpg"]
        token = settings.token_path.read_text().strip()
        async with SidecarClient.open(port, token) as sidecar:
            starts = {}
            for name, job_id in jobs.items():
                status = await sidecar.status(job_id)
                assert status.state == "done" and status.priority in ("hero", "normal")
                starts[name] = status.started_at
        assert min(starts, key=starts.get) == "d.jpg"
        assert f"sidecar: port {port}" in capsys.readouterr().out

        wrong_token = ["--config-dir", str(tmp_path / "another-config")]
        code = await asyncio.to_thread(batch, folder, tmp_path / "out2", *wrong_token, port=port)
        assert code == 2 and "unauthorized" in capsys.readouterr().err


async def test_a_color_batch_passes_the_first_five_skin_tones_to_the_rest(
    tmp_path, settings, crop8
):
    folder = tmp_path / "colour"
    folder.mkdir()
    for index in range(7):
        frame = crop8.copy()
        frame[-1, -1, 0] = index  # seven frames of one sitting
        (folder / f"f{index}.png").write_bytes(encode_png(frame))
    app = build_app(settings)
    async with serve_in_process(app) as port:
        argv = ["--op", "color", "--config-dir", str(settings.config_dir)]
        code = await asyncio.to_thread(batch, folder, tmp_path / "out", *argv, port=port)
        assert code == 0
        params = {j.request.document_id: j.request.params for j in app[SCHEDULER].jobs.values()}
        token = settings.token_path.read_text().strip()
        async with SidecarClient.open(port, token) as sidecar:
            tones = []
            for name in sorted(params)[:5]:
                image_id = next(
                    j.request.image_id
                    for j in app[SCHEDULER].jobs.values()
                    if j.request.document_id == name
                )
                tone = await sidecar.skin_tone(image_id)
                tones.append((tone.a, tone.b))
    assert all("prior_a" not in params[f"f{i}.png"] for i in range(5))
    expected_a = sum(t[0] for t in tones) / 5
    for name in ("f5.png", "f6.png"):
        assert params[name]["prior_a"] == pytest.approx(expected_a, abs=1e-3)
        assert params[name]["prior_b"] == pytest.approx(sum(t[1] for t in tones) / 5, abs=1e-3)
