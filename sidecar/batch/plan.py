"""Which files are done, and where their outputs go: the folder's images (heroes first),
less those whose output is newer than the input, and the Photoshop documents whose
result could not be written back, refused from their header before any work."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..cache.atomic import TEMP_PREFIX
from ..imaging import psd
from .recipe import UsageError
from .report import Outcome

# the files a batch takes, by suffix, with the media type they are uploaded as
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".psd": "image/vnd.adobe.photoshop",
    ".psb": "image/vnd.adobe.photoshop",
}


@dataclass(frozen=True)
class FileTask:
    source: Path
    target: Path
    hero: bool = False


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
