"""`retouch-sidecar apply` and `batch`: retouch image files through a sidecar.

Every job of a batch is submitted up front (the sidecar's queue orders them, heroes
first) while results are fetched as they finish. Outputs keep the input's format and
bit depth and are written atomically, so an interrupted run leaves whole files or
none. A rerun skips outputs newer than their inputs, and the sidecar's result cache
answers the rest that it has already done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from rich.console import Console

from .batch_client import Display, JobEnd, JobTracker, SidecarClient, SidecarError, connect
from .cache.atomic import TEMP_PREFIX, atomic_write
from .imaging import psd
from .imaging.files import decode_result, output_file, output_format
from .imaging.metadata import read_file_metadata
from .imaging.tiff import encode_tiff
from .settings import Settings
from .token import load_or_create_token

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".psd": "image/vnd.adobe.photoshop",
    ".psb": "image/vnd.adobe.photoshop",
}
# a document's new layer is named as the panel names it in Photoshop
LAYER_NAMES = {
    "beauty": "Beauty",
    "color": "Color",
    "dodge_burn": "Dodge & Burn",
    "volume": "Volume",
}
RETOUCH_OPS = ("beauty", "color", "dodge_burn", "volume")
CONNECT_WAIT_S = 5.0
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad arguments: one line on stderr and exit code 2."""


@dataclass(frozen=True)
class Recipe:
    """What is done to every file."""

    op: str
    intensity: float = 1.0
    params: dict = field(default_factory=dict)

    def job(self, image_id: str, document_id: str, hero: bool, prior: dict | None = None) -> dict:
        return {
            "op": self.op,
            "image_id": image_id,
            "intensity": self.intensity,
            "params": {**(prior or {}), **self.params},
            "priority": "hero" if hero else "normal",
            "document_id": document_id[:200],
            # no draft/preview levels: nobody looks at them, and the result is the same
            "preview": {"progressive": False},
        }


@dataclass(frozen=True)
class FileTask:
    source: Path
    target: Path
    hero: bool = False


@dataclass
class Outcome:
    name: str
    status: str  # done | cached | skipped | failed
    job_id: str | None = None
    code: str | None = None
    message: str = ""


@dataclass
class Report:
    """Outcomes in the order they came back (skipped files first)."""

    total: int
    outcomes: list[Outcome] = field(default_factory=list)
    refused: str | None = None  # the sidecar refused the request itself (e.g. a bad --param)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("done", "cached", "skipped", "failed")]
        if len(self.outcomes) < self.total:
            parts.append(f"{self.total - len(self.outcomes)} not finished")
        text = f"summary: {self.total} images: {', '.join(parts)}"
        failures = [f"{o.name}: {o.code}" for o in self.outcomes if o.status == "failed"]
        return text + (f" [{'; '.join(failures)}]" if failures else "")

    @property
    def exit_code(self) -> int:
        if self.refused:
            return 2
        return 1 if self.count("failed") else 0


# -- arguments ------------------------------------------------------------------------


def parse_value(text: str) -> float | int | bool | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(items: Iterable[str]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise UsageError(f"bad --param {item!r}: expected KEY=VALUE")
        params[key.strip()] = parse_value(value.strip())
    return params


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    if args.op not in RETOUCH_OPS:
        raise UsageError(f"unknown op {args.op!r}: expected one of {', '.join(RETOUCH_OPS)}")
    if not 0.0 <= args.intensity <= 1.0:
        raise UsageError(f"--intensity {args.intensity} is outside 0..1")
    return Recipe(args.op, args.intensity, parse_params(args.param))


# -- files ----------------------------------------------------------------------------


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder` (dotfiles left out), sorted by name."""
    return sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix.lower() in IMAGE_TYPES
            and not path.name.startswith(".")
            and path.is_file()
        ),
        key=lambda path: path.name,
    )


def plan_batch(
    in_dir: Path, out_dir: Path, heroes: Iterable[str] = ()
) -> tuple[list[FileTask], list[Outcome]]:
    """The files to do (heroes first, then by name), and the outcomes of those that are
    not done: skipped because their output is already newer than the input, or failed
    before any work because they are documents whose result could not be written."""
    if not in_dir.is_dir():
        raise UsageError(f"IN_DIR {in_dir} is not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"OUT_DIR {out_dir} is not a folder")
    if out_dir.exists() and out_dir.resolve() == in_dir.resolve():
        raise UsageError("OUT_DIR must differ from IN_DIR (outputs keep the inputs' names)")
    files = image_files(in_dir)
    hero_names = {Path(hero).name for hero in heroes}
    missing = hero_names - {path.name for path in files}
    if missing:
        raise UsageError(f"--hero {', '.join(sorted(missing))}: not an image in {in_dir}")
    _make_dir(out_dir)
    _remove_temps(out_dir, [path.name for path in files])
    tasks, skipped = [], []
    for source in sorted(files, key=lambda path: path.name not in hero_names):
        target = out_dir / source.name
        refusal = _refusal(source)
        if refusal is not None:
            skipped.append(refusal)
        elif _newer(target, source):
            skipped.append(Outcome(source.name, "skipped", message="output is newer"))
        else:
            tasks.append(FileTask(source, target, source.name in hero_names))
    return tasks, skipped


def plan_apply(source: Path, target: Path) -> FileTask:
    if not source.is_file():
        raise UsageError(f"IN {source} is not a file")
    for path, role in ((source, "IN"), (target, "OUT")):
        if path.suffix.lower() not in IMAGE_TYPES:
            raise UsageError(f"{role} {path.name}: expected {', '.join(IMAGE_TYPES)}")
    if target.exists() and target.resolve() == source.resolve():
        raise UsageError("OUT must differ from IN")
    if psd.is_psd(source) != psd.is_psd(target):
        raise UsageError("IN and OUT are both Photoshop documents (.psd, .psb) or neither")
    refusal = _refusal(source)
    if refusal is not None:
        raise UsageError(f"IN {source.name}: {refusal.message}")
    _make_dir(target.parent)
    _remove_temps(target.parent, [target.name])
    return FileTask(source, target)


def _refusal(source: Path) -> Outcome | None:
    """A Photoshop document whose result could not be written back (its mode, depth or
    missing composite), found from its header before any work."""
    if not psd.is_psd(source):
        return None
    try:
        psd.check_document(source)
    except psd.PsdError as exc:
        return Outcome(source.name, "failed", code=exc.code, message=exc.message)
    except OSError as exc:
        return Outcome(source.name, "failed", code="unreadable", message=exc.strerror or str(exc))
    return None


def _make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror}") from exc


def _newer(target: Path, source: Path) -> bool:
    try:
        return target.stat().st_mtime_ns > source.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _remove_temps(folder: Path, names: list[str]) -> None:
    """Temp files a killed run of ours left (`atomic_write` names them .tmp-NAME.XXXX)."""
    prefixes = tuple(f"{TEMP_PREFIX}{name}." for name in names)
    for path in folder.iterdir():
        if path.name.startswith(prefixes) and path.is_file():
            path.unlink(missing_ok=True)


def result_format(target: Path) -> str:
    """What to ask the sidecar for: JPEG outputs are re-encoded from a PNG."""
    return "tiff" if target.suffix.lower() in (".tif", ".tiff", ".psd", ".psb") else "png"


def upload_body(source: Path) -> tuple[bytes | memoryview, str]:
    """What is uploaded for `source`: the file itself, or a document's composite (as an
    uncompressed TIFF at its depth)."""
    if psd.is_psd(source):
        pixels, _ = psd.read_composite(source)
        return encode_tiff(pixels, None), "image/tiff"
    return source.read_bytes(), IMAGE_TYPES[source.suffix.lower()]


def write_output(target: Path, result: bytes, source: Path | None = None, op: str = "") -> None:
    """`result` (the sidecar's PNG or TIFF) as `target`, atomically, in the target's
    format, carrying the metadata of `source` (the input file): its ICC profile, EXIF,
    XMP, IPTC and resolution, and grayscale when it was gray. A Photoshop document is
    `source` with the result as one more layer, named after `op`."""
    if psd.is_psd(target) and source is not None:
        pixels = decode_result(result)
        chunks = [psd.with_result_layer(source, pixels, LAYER_NAMES.get(op, op or "Retouch"))]
    else:
        meta = read_file_metadata(source) if source is not None else None
        chunks = output_file(result, output_format(target.name), meta)
    atomic_write(target, chunks, mode=0o666)  # the umask decides, as for any new file


# -- the run --------------------------------------------------------------------------


async def process(
    client: SidecarClient, tasks: list[FileTask], recipe: Recipe, display: Display, report: Report
) -> None:
    """Submit every task, then fetch and write each result as its job ends. Jobs not
    ended when this is interrupted are cancelled."""
    tracker = JobTracker(client, lambda task, event: display.job_event(task.source.name, event))
    following = asyncio.create_task(tracker.run())
    submitting = None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.connected.wait(), CONNECT_WAIT_S)
        submitting = asyncio.create_task(_submit_all(client, tasks, recipe, tracker, report))
        submitting.add_done_callback(lambda task: _wake_on_crash(task, tracker.ended))
        for _ in tasks:
            item = await tracker.ended.get()
            if isinstance(item, BaseException):
                raise item
            outcome = await _collect(client, recipe.op, *item)
            report.outcomes.append(outcome)
            display.finished(outcome)
    finally:
        for task in (submitting, following):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await tracker.cancel_all()


async def _submit_all(
    client: SidecarClient,
    tasks: list[FileTask],
    recipe: Recipe,
    tracker: JobTracker,
    report: Report,
) -> None:
    prior = SessionPrior(recipe)
    for task in tasks:
        job_id = None
        if report.refused:
            end = JobEnd("failed", code="not_submitted", message=report.refused)
            tracker.ended.put_nowait((task, job_id, end))
            continue
        try:
            data, content_type = await asyncio.to_thread(upload_body, task.source)
            image_id = await client.upload(data, content_type)
            params = prior.params()
            await prior.learn(client, image_id)
            answer = await client.submit(recipe.job(image_id, task.source.name, task.hero, params))
        except OSError as exc:
            end = JobEnd("failed", code="unreadable", message=exc.strerror or str(exc))
        except psd.PsdError as exc:
            end = JobEnd("failed", code=exc.code, message=exc.message)
        except SidecarError as exc:
            if exc.code == "invalid_request":  # the same body for every file: stop here
                report.refused = exc.message
            end = JobEnd("failed", code=exc.code, message=exc.message)
        else:
            job_id = answer["job_id"]
            if answer["state"] not in ("done", "failed", "cancelled"):
                await tracker.watch(job_id, task)
                continue
            end = JobEnd.from_json(answer)  # answered from the result cache
        tracker.ended.put_nowait((task, job_id, end))


class SessionPrior:
    """For `color`, the shoot's skin tone: the mean of the first five images' own
    median skin a*, b*, passed to the rest as `prior_a`/`prior_b`, which the engine
    uses only as a weak (0.1) pull, so one badly lit frame cannot tint the shoot."""

    FIRST = 5

    def __init__(self, recipe: Recipe) -> None:
        explicit = "prior_a" in recipe.params or "prior_b" in recipe.params
        self.active = recipe.op == "color" and not explicit
        self.seen = 0
        self.tones: list[tuple[float, float]] = []

    def params(self) -> dict:
        if not self.active or self.seen < self.FIRST or not self.tones:
            return {}
        a = sum(t[0] for t in self.tones) / len(self.tones)
        b = sum(t[1] for t in self.tones) / len(self.tones)
        return {"prior_a": round(a, 3), "prior_b": round(b, 3)}

    async def learn(self, client: SidecarClient, image_id: str) -> None:
        if not self.active or self.seen >= self.FIRST:
            return
        self.seen += 1
        try:
            tone = await client.skin_tone(image_id)
        except SidecarError:  # a sidecar that cannot measure it: no prior, no failure
            self.active = False
            return
        if tone is not None:
            self.tones.append(tone)


def _wake_on_crash(task: asyncio.Task, ended: asyncio.Queue) -> None:
    if not task.cancelled() and task.exception() is not None:
        ended.put_nowait(task.exception())


async def _collect(
    client: SidecarClient, op: str, task: FileTask, job_id: str | None, end: JobEnd
) -> Outcome:
    name = task.source.name
    if end.state != "done" or job_id is None:
        return Outcome(name, "failed", job_id, end.code or end.state, end.message)
    try:
        data = await client.result(job_id, result_format(task.target))
        await asyncio.to_thread(write_output, task.target, data, task.source, op)
    except SidecarError as exc:
        return Outcome(name, "failed", job_id, exc.code, exc.message)
    except (OSError, ValueError) as exc:
        return Outcome(name, "failed", job_id, "write_failed", str(exc))
    except MemoryError:
        return Outcome(name, "failed", job_id, "out_of_memory", "not enough memory to write it")
    return Outcome(name, "cached" if end.cached else "done", job_id)


async def run_tasks(
    tasks: list[FileTask],
    recipe: Recipe,
    *,
    port: int,
    token: str,
    start_app: Callable[[], web.Application],
    display: Display,
    report: Report,
) -> None:
    """Runs the tasks on the sidecar at `port`, or on one started here for the run."""
    async with connect(port, token, start_app) as (client, in_process):
        display.note("sidecar: started in this process" if in_process else f"sidecar: port {port}")
        with display:
            await process(client, tasks, recipe, display, report)


def run_command(
    args: argparse.Namespace, settings: Settings, start_app: Callable[[], web.Application]
) -> int:
    """`apply` and `batch` from their parsed arguments; returns the exit code."""
    try:
        recipe = recipe_from_args(args)
        if args.command == "batch":
            tasks, skipped = plan_batch(args.in_dir, args.out_dir, args.hero)
        else:
            tasks, skipped = [plan_apply(args.input, args.output)], []
    except UsageError as exc:
        print(f"retouch-sidecar: {exc}", file=sys.stderr)
        return 2
    report = Report(len(tasks) + len(skipped))
    display = Display(report.total, Console(highlight=False))
    for outcome in skipped:
        report.outcomes.append(outcome)
        display.finished(outcome)
    try:
        if tasks:
            token = load_or_create_token(settings.token_path)
            asyncio.run(
                run_tasks(
                    tasks,
                    recipe,
                    port=settings.port,
                    token=token,
                    start_app=start_app,
                    display=display,
                    report=report,
                )
            )
    except KeyboardInterrupt:
        display.note(report.summary() + " (interrupted; unfinished jobs cancelled)")
        return EXIT_INTERRUPTED
    except SidecarError as exc:  # reached, but refused our token
        print(f"retouch-sidecar: sidecar on port {settings.port}: {exc}", file=sys.stderr)
        return 2
    display.note(report.summary())
    if report.refused:
        print(f"retouch-sidecar: the sidecar refused the job: {report.refused}", file=sys.stderr)
    return report.exit_code
