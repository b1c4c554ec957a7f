"""Each output written once in a run, whatever workers die and whatever is retried.

"Written once": in one run, an output path is replaced (one `os.replace` onto it) by
exactly one attempt, and a reader only ever sees the old file or the whole new one.
A retry happens only after its earlier attempt's worker died (the driver never sends
an image to two workers at once), but that worker may have died anywhere: before its
write, halfway through it, or after it and before it could answer. So an attempt:

1. writes the whole file beside the output, as a temp file (`.tmp-NAME.XXXXXXXX`,
   fsynced; `cache.atomic.write_temp`): a death here leaves only that temp;
2. claims the output for the run: `.tmp-NAME.RUN.claim`, created with O_EXCL;
3. if the claim was its own, renames the temp onto the output and syncs the folder.

A retry that finds the claim already taken knows an earlier attempt got to step 2.
If the output is then newer than the input and has exactly the bytes the retry made
(the same input, op, params and seed make the same bits), that attempt renamed it
before dying: the retry writes nothing. Otherwise it died between claiming and
renaming, and the retry renames its own file. The claims and any temps of the run are
removed when it ends (and a later run's plan removes whatever a killed one left).

What this assumes of the shared folder: an O_EXCL create and a rename are atomic
(local disks, NFSv3 and later, SMB). What it cannot stop: a worker that Ray declares
dead while it still runs (a node cut off from the cluster but not from the folder)
could rename once more in the microseconds between its claim and its rename, with the
same bits.
"""

from __future__ import annotations

import filecmp
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from ..cache.atomic import TEMP_PREFIX, fsync_dir, write_temp

CLAIM_SUFFIX = ".claim"

Write = Callable[..., None]  # write(path, chunks, *, mode): `batch.outputs.write_output`'s


def claim_path(target: Path, run: str) -> Path:
    return target.with_name(f"{TEMP_PREFIX}{target.name}.{run}{CLAIM_SUFFIX}")


class ClaimedWrite:
    """The write of one attempt at one output, for `write_output(..., write=...)`.
    After the call, `replaced` says whether this attempt renamed its file onto the
    output (False: an earlier attempt of the run had written the same bytes)."""

    def __init__(self, run: str, attempt: int, source: Path) -> None:
        self.run = run
        self.attempt = attempt
        self.source = source
        self.replaced: bool | None = None

    def __call__(self, path: Path, chunks: Iterable, *, mode: int = 0o600) -> None:
        tmp = write_temp(path, chunks, mode=mode)
        try:
            if self._claim(path) or not self._written_before(path, tmp):
                os.replace(tmp, path)
                self.replaced = True
                fsync_dir(path.parent)
            else:
                self.replaced = False
        finally:
            tmp.unlink(missing_ok=True)

    def _claim(self, path: Path) -> bool:
        """True when the claim is this attempt's; False when an earlier one holds it."""
        claim = claim_path(path, self.run)
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as file:
            file.write(f"attempt {self.attempt}, pid {os.getpid()} on {socket.gethostname()}\n")
        return True

    def _written_before(self, path: Path, mine: Path) -> bool:
        """Whether the output holds what an earlier attempt of this run wrote: newer
        than the input (as the plan judges a finished output) and byte for byte this
        attempt's file."""
        try:
            newer = path.stat().st_mtime_ns > self.source.stat().st_mtime_ns
            return newer and filecmp.cmp(path, mine, shallow=False)
        except FileNotFoundError:
            return False


def clear_leftovers(targets: Iterable[Path]) -> int:
    """Remove the claims and the temps (of killed workers) beside the outputs, once the
    run's workers are stopped; returns how many files went."""
    removed = 0
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(target.name)
    for folder, names in by_folder.items():
        prefixes = tuple(f"{TEMP_PREFIX}{name}." for name in names)
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            if path.name.startswith(prefixes) and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed
