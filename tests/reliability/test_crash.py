"""kill -9 of the sidecar in the middle of a batch: started again on the same port and
folders, the sidecar takes its queue back from disk and the same `retouch-sidecar
batch` run finishes with every image written exactly once, whole."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import cv2
import numpy as np
import pytest
from fuzzing import tally
from helpers import encode_png, wait_until
from live_server import SidecarProcess

from sidecar.cache.atomic import TEMP_PREFIX
from sidecar.schema import TERMINAL_STATES


def shoot(folder, count: int) -> dict[str, np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(21)
    images = {}
    for n in range(count):
        pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        (folder / f"img{n:02d}.png").write_bytes(encode_png(pixels))
        images[f"img{n:02d}.png"] = pixels
    return images


def outputs(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def run_batch_through_kills(tmp_path, *, images: int, kills: int, steps: int) -> None:
    sidecar = SidecarProcess(tmp_path / "sidecar", "--engine", "synthetic").start()
    originals = shoot(tmp_path / "in", images)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "sidecar", "batch", str(tmp_path / "in"), str(out),
        "--op", "beauty", "--param", f"steps={steps}", "--param", "step_ms=15",
        "--port", str(sidecar.port), "--config-dir", str(sidecar.root / "config"),
    ]  # fmt: skip
    log = (tmp_path / "batch.log").open("wb")
    batch = subprocess.Popen(command, env=sidecar.env, stdout=log, stderr=log)

    def written(count: int) -> bool:  # the batch's files, from another process: polled
        assert batch.poll() is None, (tmp_path / "batch.log").read_text()
        return len(outputs(out)) >= count

    try:
        for kill in range(kills):
            # let some images finish, then kill mid-job
            want = max((kill + 1) * images // (kills + 2), 1)
            wait_until(partial(written, want), 120, what="the batch making progress")
            sidecar.kill()  # returns once the process is gone, and its port with it
            tally("faults")
            sidecar.start()  # same port, folders and token: the batch reconnects
        assert batch.wait(300) == 0, (tmp_path / "batch.log").read_text()
        names = outputs(out)
        assert names == sorted(originals), names  # every image, nothing else, no temp
        assert not [n for n in names if n.startswith(TEMP_PREFIX)]
        for name in names:  # whole files of the right size
            decoded = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
            assert decoded is not None and decoded.shape == originals[name].shape, name
        jobs = sidecar.http().request("GET", "/v1/jobs").json()["jobs"]
        done = sorted(j["job_id"] for j in jobs if j["state"] == "done")
        assert all(j["state"] in TERMINAL_STATES for j in jobs), jobs
        assert len(done) == len(set(done))
        tally("requests", images)
    finally:
        if batch.poll() is None:
            batch.kill()
        log.close()
        sidecar.stop()


def test_a_batch_finishes_once_through_a_kill_9_of_the_sidecar(tmp_path):
    run_batch_through_kills(tmp_path, images=8, kills=1, steps=12)


@pytest.mark.slow
def test_a_long_batch_finishes_once_through_five_kills(tmp_path):
    run_batch_through_kills(tmp_path, images=40, kills=5, steps=20)
