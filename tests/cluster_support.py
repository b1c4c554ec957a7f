"""What the cluster tests run inside the Ray workers (tests/ is on their PYTHONPATH):
the batch's own files (`ShootFiles`), watched. Each worker process appends to one log
what the test asks about: every `os.replace` onto an output (the "written once"
count) and every request's prior. It can also hold an image's first attempt until the
test kills its worker, or kill its worker itself right after an output is renamed."""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_until

from sidecar.batch.on_cluster import ShootFiles
from sidecar.cache.atomic import TEMP_PREFIX

_installed: set[str] = set()  # logs whose os.replace watch this process has put in


def first_time(marker: Path) -> bool:
    """True once per marker, across processes (and restarts of a worker)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def append(log: Path, record: dict) -> None:
    """One JSON line, appended in one write (O_APPEND on a local disk: never torn)."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def records(log: Path, kind: str) -> list[dict]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def wait_for(path: Path, timeout: float = 120.0) -> Path:
    """Until `path` exists (what a worker does, seen from the test)."""
    # another process writes it: the file appearing is the only sign there is
    wait_until(path.exists, timeout, 0.02, what=f"{path} to appear")
    return path


@dataclass(frozen=True)
class WatchedFiles(ShootFiles):
    log: Path = Path("unset")
    out_dir: Path = Path("unset")
    hold: str | None = None  # this image's first attempt waits to be killed
    die_after_write: str | None = None  # this image's first rename kills its worker

    def read(self, source: Path):
        self._watch_replaces()
        if source.name == self.hold and first_time(self.log.parent / f"held-{source.name}"):
            pid_file = self.log.parent / f"pid-{source.name}"
            pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
            os.replace(pid_file.with_suffix(".tmp"), pid_file)
            threading.Event().wait()  # until the test kills this process
        return super().read(source)

    def request(self, image_id, name, hero, prior):
        append(self.log, {"kind": "request", "name": name, "prior": prior})
        return super().request(image_id, name, hero, prior)

    def _watch_replaces(self) -> None:
        """Count every rename onto an output in this process (once per process)."""
        if str(self.log) in _installed:
            return
        _installed.add(str(self.log))
        real_replace = os.replace
        log, out_dir, die_after = self.log, self.out_dir, self.die_after_write

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            dst = Path(dst)
            if dst.parent == out_dir and not dst.name.startswith(TEMP_PREFIX):
                append(log, {"kind": "replace", "name": dst.name, "pid": os.getpid()})
                if dst.name == die_after and first_time(log.parent / f"died-{dst.name}"):
                    os.kill(os.getpid(), signal.SIGKILL)  # renamed, but never answered

        os.replace = replace
