"""A shoot on a local Ray cluster (`batch --cluster`) against the single-machine batch.

Measured in this process, side by side, run after run: the single-machine batch (its
sidecar started in this process, as `batch` does; its start not counted) and the
cluster path with 1 and with 2 workers on one local cluster of 2 CPUs (started once;
each run starts its workers, and that is counted apart). Each run writes into empty
folders and starts from empty caches. Rates are images over the time from the first
image sent to the last one written, so each engine's first load is in, as it is in a
real shoot. Also: what one image costs on the object store (what is pickled for it)
and on the shared folder, a worker's round trip with no work, and whether the outputs
have the same bits as the single-machine batch's (the check).
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tifffile
from rich.console import Console

from sidecar.batch import Display, Recipe, Report, plan_batch, process
from sidecar.batch.on_cluster import ShootFiles
from sidecar.cli import build_app
from sidecar.client import connect
from sidecar.cluster import ClusterAddress, Ended, Item, Order, Sent, Setup, WorkerUp, run_shoot
from sidecar.cluster.items import Done
from sidecar.settings import Settings
from sidecar.token import load_or_create_token

from .harness import portrait, variant
from .report import Detail, Options, Outcome, machine, median
from .sidecar import REPO, free_port

CPUS = 2


def make_shoot(folder: Path, count: int, width: int, height: int) -> None:
    folder.mkdir(parents=True)
    base = portrait(width, height)
    for index in range(count):
        tifffile.imwrite(folder / f"IMG_{index:04d}.tif", variant(base, index), photometric="rgb")


async def single_machine(shoot: Path, out: Path, root: Path) -> float:
    """Seconds for the single-machine batch's work (the sidecar already started)."""
    settings = Settings(
        cache_dir=root / "cache", config_dir=root / "config", data_dir=root / "data", port=0
    )
    token = load_or_create_token(settings.token_path)
    tasks, _ = plan_batch(shoot, out)
    report = Report(len(tasks))
    display = Display(len(tasks), Console(file=io.StringIO()))
    async with connect(free_port(), token, lambda: build_app(settings)) as (client, _):
        started = time.perf_counter()
        await process(client, tasks, Recipe("beauty"), display, report)
        seconds = time.perf_counter() - started
    if report.count("done") != len(tasks):
        raise RuntimeError(f"single-machine batch: {report.summary()}")
    return seconds


@dataclass(frozen=True)
class PinnedFiles(ShootFiles):
    """The batch's files, read by a worker that first takes a core of its own (every
    thread of its process pinned to it): workers as if each had a machine to itself."""

    cores: Path = Path("unset")  # where each worker claims its core

    def read(self, source: Path):
        pin_to_a_free_core(self.cores)
        return super().read(source)


_pinned: set[str] = set()


def pin_to_a_free_core(folder: Path) -> None:
    if str(folder) in _pinned or not hasattr(os, "sched_setaffinity"):
        return
    _pinned.add(str(folder))
    for core in sorted(os.sched_getaffinity(0)):
        try:
            os.close(os.open(folder / f"core-{core}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), {core})
        return


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far (Linux; 0 elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def on_cluster(shoot: Path, out: Path, workers: int, files: ShootFiles) -> dict[str, float]:
    """The cluster path with `workers` workers: seconds from the first image sent to the
    last one ended, from the call to the last worker up (their start), and the cores
    the workers kept busy meanwhile (their CPU time over that time)."""
    tasks, _ = plan_batch(shoot, out)
    items = [Item(i, t.source.name, t.source, t.target) for i, t in enumerate(tasks)]
    times: dict[str, list[float]] = {"up": [], "sent": [], "ended": []}
    pids: list[int] = []
    cpu = {"first": 0.0, "last": 0.0}
    failed = []

    def on_event(event) -> None:
        now = time.perf_counter()
        if isinstance(event, WorkerUp):
            times["up"].append(now)
            pids.append(event.pid)
        elif isinstance(event, Sent):
            if not times["sent"]:
                cpu["first"] = sum(map(cpu_seconds, pids))
            times["sent"].append(now)
        elif isinstance(event, Ended):
            times["ended"].append(now)
            cpu["last"] = sum(map(cpu_seconds, pids))
            if event.done.status != "done":
                failed.append(f"{event.done.name}: {event.done.code} {event.done.message}")

    started = time.perf_counter()
    run_shoot(items, Setup(files), ClusterAddress("local", workers), on_event=on_event)
    if failed:
        raise RuntimeError(f"cluster, {workers} workers: {failed}")
    work = max(times["ended"]) - min(times["sent"])
    return {
        "work": work,
        "start": max(times["up"]) - started,
        "cores": (cpu["last"] - cpu["first"]) / work,
    }


def round_trip_ms(runs: int) -> float:
    """A call to a worker that does nothing: what the driver adds per image."""
    import ray

    from sidecar.cluster.pool import RemoteWorker

    worker = RemoteWorker.options(num_cpus=1).remote(Setup(ShootFiles(Recipe("beauty"))))
    ray.get(worker.ready.remote())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        ray.get(worker.ready.remote())
        times.append((time.perf_counter() - started) * 1000)
    ray.kill(worker)
    return median(times)


def object_store_bytes(shoot: Path) -> int:
    """What is serialised for one image: its order out and its answer back."""
    import ray

    source = next(shoot.iterdir())
    item = Item(0, source.name, source, shoot.parent / "out" / source.name)
    order = Order(item, "0123456789ab", prior={"prior_a": 12.345, "prior_b": 17.5})
    done = Done(source.name, "done", decoded=True, tone=(12.3, 17.5), written=True, seconds=1.0)
    return len(ray.cloudpickle.dumps(order)) + len(ray.cloudpickle.dumps(done))


def same_bits(first: Path, second: Path) -> bool:
    names = sorted(p.name for p in first.iterdir())
    if names != sorted(p.name for p in second.iterdir()):
        return False
    return all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


async def run(opts: Options) -> Outcome:
    import ray

    count, (width, height) = (4, (300, 200)) if opts.quick else (16, (1500, 1000))
    runs = opts.n(3, 1)
    kinds = ("1", "2", "1 pinned", "2 pinned")
    got: dict[str, list[float]] = {key: [] for key in ("single", *kinds, "start", "cores")}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        shoot = root / "shoot"
        make_shoot(shoot, count, width, height)
        started = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=CPUS,
            num_gpus=0,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=128 << 20,
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},  # bench.cluster, pinned
        )
        cluster_start = time.perf_counter() - started
        try:
            same = True
            for run_index in range(runs):
                single_out = root / f"single-{run_index}"
                seconds = await single_machine(shoot, single_out, root / f"single-{run_index}-dirs")
                got["single"].append(seconds)
                for kind in kinds:
                    workers = int(kind[0])
                    name = f"cluster-{kind.replace(' ', '-')}-{run_index}"
                    files = ShootFiles(Recipe("beauty"))
                    if "pinned" in kind:
                        (root / f"{name}-cores").mkdir()
                        files = PinnedFiles(Recipe("beauty"), cores=root / f"{name}-cores")
                    out = root / name
                    measured = await asyncio.to_thread(on_cluster, shoot, out, workers, files)
                    got[kind].append(measured["work"])
                    got["start"].append(measured["start"])
                    if kind == "1":
                        got["cores"].append(measured["cores"])
                    same = same and same_bits(single_out, out)
            trip = round_trip_ms(opts.n(50, 10))
            stored = object_store_bytes(shoot)
        finally:
            ray.shutdown()
        read = statistics.mean(p.stat().st_size for p in shoot.iterdir())
        written = statistics.mean(p.stat().st_size for p in (root / "cluster-1-0").iterdir())

    rate = {key: count / median(got[key]) for key in ("single", *kinds)}
    per_image = {key: 1000 / value for key, value in rate.items()}
    beyond = per_image["1"] - per_image["single"]
    rows = [
        [
            "single-machine batch (its sidecar in this process)",
            f"{rate['single']:.2f} images/s",
            f"{per_image['single']:.0f} ms an image",
            "the sidecar reads each file by its path, keeps the result (fsync), writes the output",
        ],
        [
            "cluster, 1 worker",
            f"{rate['1']:.2f} images/s",
            f"{per_image['1']:.0f} ms an image",
            "the worker reads, decodes, retouches, encodes and writes on the folder",
        ],
        [
            "cluster, 2 workers",
            f"{rate['2']:.2f} images/s",
            f"{rate['2'] / rate['1']:.2f}× the 1-worker rate",
            f"{CPUS} CPUs for 2 workers and the driver",
        ],
        [
            "cores one worker kept busy",
            f"{median(got['cores']):.2f} of {CPUS}",
            "its CPU time over the run's time",
            "over 1: the engine's own threads (OpenCV) use more than the worker's CPU",
        ],
        [
            "cluster, 1 worker on a core of its own",
            f"{rate['1 pinned']:.2f} images/s",
            f"{per_image['1 pinned']:.0f} ms an image",
            "every thread of the worker pinned to one core",
        ],
        [
            "cluster, 2 workers, a core each",
            f"{rate['2 pinned']:.2f} images/s",
            f"{rate['2 pinned'] / rate['1 pinned']:.2f}× the 1-worker rate",
            "as if each worker had a machine of one core: how the rate grows with machines",
        ],
        [
            "cluster path per image, beyond the single machine (1 worker)",
            f"{beyond:+.0f} ms",
            f"{beyond / per_image['single']:+.0%}",
            "negative: the cluster path skips the image store and the result cache",
        ],
        [
            "start of a local cluster (ray.init, 2 CPUs)",
            f"{cluster_start:.1f} s",
            "once per command",
            "`local[N]`: paid by each run; `auto`: the cluster is already up",
        ],
        [
            "start of the workers (to the last one's engine made)",
            f"{median(got['start']):.1f} s",
            "once per run",
            "a process per worker, imports, engine made (its graphs on first use)",
        ],
        [
            "a round trip to a worker, no work",
            f"{trip:.2f} ms",
            "per image",
            "the driver's call and its answer",
        ],
        [
            "object store per image",
            f"{stored} bytes",
            "an order (paths, prior) and its answer",
            "no pixels: inputs and outputs are paths on the shared folder",
        ],
        [
            "shared folder per image",
            f"{read / 1e6:.2f} MB read, {written / 1e6:.2f} MB written",
            "1 claim (O_EXCL), 1 rename, 2 fsyncs",
            "the input once; the output as a temp, then renamed onto its name",
        ],
        [
            "outputs: the same bits as the single-machine batch",
            "yes" if same else "NO",
            f"{count} images × {runs} runs × {len(kinds)} cluster runs",
            "byte for byte",
        ],
    ]
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"{count} portraits, {width}×{height} 16-bit TIFF, beauty; a local Ray "
        f"cluster of {CPUS} CPUs in this process",
        "checks_passed": same,
    }
    header = ["what", "value", "also", "note"]
    title = "A shoot on a local Ray cluster against the single-machine batch"
    return Outcome(details=[Detail("cluster", title, header, rows, meta)])
