"""`batch --cluster` on a local Ray cluster (one for the module, 2 CPUs): the same bits
as the single-machine batch, nothing lost or written twice when a worker is killed
mid-image, a rerun that skips finished outputs, and Ctrl-C that stops everything."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from cluster_support import WatchedFiles, records, wait_for
from helpers import encode_jpeg, encode_png, encode_tiff, free_port, wait_until
from psd_tools import PSDImage
from psd_tools.api.layers import PixelLayer
from rich.console import Console

from sidecar.batch import Recipe, Report, plan_batch
from sidecar.batch.cluster_display import ClusterDisplay
from sidecar.batch.on_cluster import run_on_cluster
from sidecar.cache.atomic import TEMP_PREFIX
from sidecar.cli import main
from sidecar.cluster import parse_address
from sidecar.settings import Settings

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

TESTS = Path(__file__).parent
SIDE = 192


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module; its workers import tests/ (the hooks)."""
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(
        address="local",  # a new one, whatever cluster this machine may run
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=128 << 20,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def crop8() -> np.ndarray:
    from skimage import data

    face = data.astronaut()[0:320, 96:416]
    return cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def shoot(tmp_path_factory, crop8) -> Path:
    """PNG 8-bit, PNG 16-bit with alpha, TIFF 16-bit, gray PNG, JPEG, a document, and
    three more frames of the sitting."""
    folder = tmp_path_factory.mktemp("shoot")
    crop16 = crop8.astype(np.uint16) * 257 + 3
    alpha = np.linspace(1000, 65000, SIDE * SIDE).astype(np.uint16).reshape(SIDE, SIDE)
    (folder / "a.png").write_bytes(encode_png(crop8))
    (folder / "b16.png").write_bytes(encode_png(np.dstack([crop16, alpha])))
    (folder / "c.tif").write_bytes(encode_tiff(crop16))
    (folder / "d.jpg").write_bytes(encode_jpeg(crop8))
    (folder / "g.png").write_bytes(encode_png(cv2.cvtColor(crop8, cv2.COLOR_RGB2GRAY)))
    doc = PSDImage.new("RGB", (SIDE, SIDE), depth=8)
    PixelLayer.fromarray(crop8, doc, name="Photo")
    doc.save(folder / "p.psd")
    for index in range(3):
        frame = crop8.copy()
        frame[-1, -1, 0] = index
        (folder / f"f{index}.png").write_bytes(encode_png(frame))
    return folder


def colour_shoot(folder: Path, crop8) -> Path:
    """Seven frames of one sitting: the first five make the color prior of the rest."""
    folder.mkdir()
    for index in range(7):
        frame = crop8.copy()
        frame[-1, -1, 0] = index
        (folder / f"f{index}.png").write_bytes(encode_png(frame))
    return folder


def single_machine(in_dir: Path, out_dir: Path, root: Path, *extra: str) -> dict[str, bytes]:
    """The single-machine batch (a sidecar started in the command), its outputs' bytes."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("cache", "config", "data"):
            env.setenv(f"RETOUCH_{name.upper()}_DIR", str(root / name))
        argv = ["batch", str(in_dir), str(out_dir), *extra, "--port", str(free_port())]
        assert main(argv) == 0
    return outputs(out_dir)


def outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def reference(shoot, tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("reference")
    return single_machine(shoot, root / "out", root, "--op", "beauty", "--hero", "d.jpg")


def on_cluster(in_dir: Path, out_dir: Path, recipe: Recipe, files=None) -> tuple[Report, str]:
    """`batch --cluster auto` with the batch's files watched (`files`), as the command
    runs it, against the module's cluster: the report and what it printed."""
    tasks, skipped = plan_batch(in_dir, out_dir)
    report = Report(len(tasks) + len(skipped))
    report.outcomes += skipped
    console = Console(file=io.StringIO(), width=200)
    display = ClusterDisplay(report.total, console)
    address = parse_address("auto")
    run_on_cluster(
        tasks, recipe, address, settings=Settings(), display=display, report=report, files=files
    )
    return report, console.file.getvalue()


def no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_the_cluster_writes_the_same_bits_as_the_single_machine_batch(
    cluster, shoot, reference, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["batch", str(shoot), str(out), "--op", "beauty", "--hero", "d.jpg"]
    assert main([*argv, "--cluster", "auto"]) == 0
    text = capsys.readouterr().out
    assert "summary: 9 images: 9 done, 0 cached, 0 skipped, 0 failed" in text
    assert "cluster: auto, 1 node, 2 workers of 1 CPU" in text
    assert outputs(out).keys() == reference.keys() and len(reference) == 9
    for name, data in reference.items():
        assert outputs(out)[name] == data, f"{name} differs from the single-machine batch"
    no_leftovers(out)


def test_a_color_shoot_shares_the_first_five_tones_with_the_same_bits(cluster, crop8, tmp_path):
    folder = colour_shoot(tmp_path / "colour", crop8)
    expected = single_machine(folder, tmp_path / "single", tmp_path, "--op", "color")
    log = tmp_path / "log.jsonl"
    out = tmp_path / "out"
    files = WatchedFiles(Recipe("color"), log=log, out_dir=out)
    report, _ = on_cluster(folder, out, Recipe("color"), files)
    assert report.exit_code == 0 and report.count("done") == 7
    priors = {r["name"]: r["prior"] for r in records(log, "request")}
    assert all(priors[f"f{i}.png"] == {} for i in range(5))
    assert priors["f5.png"] == priors["f6.png"] and set(priors["f5.png"]) == {"prior_a", "prior_b"}
    assert outputs(out) == expected


def test_a_worker_killed_mid_image_loses_nothing_and_writes_nothing_twice(
    cluster, shoot, reference, tmp_path
):
    """One worker is killed (kill -9) while it works on c.tif; another kills itself
    right after renaming f1.png onto its output, before it could answer. Both images
    go to a worker again; every output is written once, with the same bits."""
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    files = WatchedFiles(
        Recipe("beauty"), log=log, out_dir=out, hold="c.tif", die_after_write="f1.png"
    )
    ended: dict = {}
    run = threading.Thread(
        target=lambda: ended.update(report=on_cluster(shoot, out, Recipe("beauty"), files))
    )
    run.start()
    pid = int(wait_for(tmp_path / "pid-c.tif").read_text())
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=300)
    assert not run.is_alive()

    report, text = ended["report"]
    assert report.exit_code == 0 and report.count("done") == 9, report.summary()
    assert "resent   c.tif: its worker's process or node was lost" in text
    assert "resent   f1.png: its worker's process or node was lost" in text
    assert (tmp_path / "died-f1.png").exists()  # f1.png's first attempt renamed, then died
    renames = [r["name"] for r in records(log, "replace")]
    assert sorted(renames) == sorted(reference), "an output was written twice, or not at all"
    assert outputs(out) == reference
    no_leftovers(out)


def test_a_rerun_skips_finished_outputs(cluster, shoot, tmp_path, capsys):
    shoot = Path(shutil.copytree(shoot, tmp_path / "shoot"))  # an input is touched below
    out = tmp_path / "out"
    argv = ["batch", str(shoot), str(out), "--op", "beauty", "--cluster", "auto"]
    assert main(argv) == 0
    first = outputs(out)
    capsys.readouterr()

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "9 images: 0 done, 0 cached, 9 skipped, 0 failed" in text
    assert "cluster:" not in text  # nothing to do: no worker was started

    (out / "a.png").unlink()
    newer = (out / "c.tif").stat().st_mtime_ns + 1_000_000
    os.utime(shoot / "c.tif", ns=(newer, newer))  # the input changed since its output
    assert main(argv) == 0
    assert "9 images: 2 done, 0 cached, 7 skipped, 0 failed" in capsys.readouterr().out
    assert outputs(out) == first


@pytest.mark.linux_only
def test_ctrl_c_stops_the_workers_and_the_local_cluster_and_leaves_whole_files(crop8, tmp_path):
    """A terminal's Ctrl-C (SIGINT to the command's process group) once the first
    output is written: exit 130, only whole outputs, and every process of the local
    cluster ended."""
    folder, out = tmp_path / "many", tmp_path / "out"
    folder.mkdir()
    for index in range(24):
        frame = crop8.copy()
        frame[-1, -1, 0] = index
        (folder / f"f{index:02d}.png").write_bytes(encode_png(frame))
    dirs = ("CACHE", "CONFIG", "DATA")
    env = {**os.environ, **{f"RETOUCH_{name}_DIR": str(tmp_path / name) for name in dirs}}
    command = [sys.executable, "-m", "sidecar", "batch", str(folder), str(out)]
    command += ["--op", "beauty", "--cluster", "local[2]"]
    proc = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(out / "f00.png", timeout=180)
        cluster_processes = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        text = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, text
    assert "(interrupted; workers stopped)" in text
    written = sorted(p.name for p in out.iterdir())
    assert 0 < len(written) < 24, "the run was not interrupted halfway"
    for name in written:
        pixels = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert pixels is not None and pixels.shape == (SIDE, SIDE, 3), name
    assert len(cluster_processes) >= 3  # the local cluster's own and its workers
    wait_until(
        lambda: not [pid for pid in cluster_processes if alive(pid)],
        30,
        what="every process of the local cluster to end",
    )


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
