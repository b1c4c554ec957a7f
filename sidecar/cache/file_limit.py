"""The image store's files on disk under its size limit: their sizes in least recently
used order (kept in memory and, across a restart, in the files' modification times),
the files being read (never removed), the files checked as they are (trusted while
unchanged), and the removal of the least recently used to make room. `ImageStore`
builds on it; the images named in use (`_in_use`) are never removed."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from .image_file import Signature, signature_of
from .usage import default_limit, stored_files

log = logging.getLogger("sidecar.cache.images")  # one log for the store
MISSING = (FileNotFoundError, NotADirectoryError)  # a miss, never an error


class StoredFiles:
    """Bookkeeping of the files under `root` (see the module); `path_for` is the
    store's."""

    _in_use: Callable[[], Iterable[str | None]]

    def path_for(self, key: str) -> Path:
        raise NotImplementedError

    def _init_files(self, root: Path, max_bytes: int | None) -> None:
        # files on disk, least recently used first; one lock orders uses and removals
        self._files_lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()
        self._used = 0
        for found in stored_files(root):
            self._files[found.key] = found.size
            self._used += found.size
        self.max_bytes = max_bytes if max_bytes is not None else default_limit(root, self._used)
        self._reading: Counter[str] = Counter()
        self._trusted: dict[str, Signature] = {}  # files checked (or written) as they are

    def _hold(self, key: str) -> Callable[[], None]:
        """Mark `key` as being read (the limit leaves its file alone); returns the
        release, to be called once."""
        with self._files_lock:
            self._reading[key] += 1

        def release() -> None:
            with self._files_lock:
                self._reading[key] -= 1
                if not self._reading[key]:
                    del self._reading[key]

        return release

    def _trust(self, key: str, signature: Signature) -> None:
        with self._files_lock:
            self._trusted[key] = signature

    def _touch(self, key: str) -> bool:
        """Mark a file on disk just used; False when there is none."""
        path = self.path_for(key)
        with self._files_lock:
            trusted = self._trusted.pop(key, None)
            try:
                if trusted is not None and signature_of(os.stat(path)) != trusted:
                    trusted = None  # changed on disk since it was checked
                os.utime(path)  # its place in the order after a restart
            except MISSING:
                self._drop_locked(key)
                return False
            except OSError:
                pass  # a read-only folder: the order in memory still holds
            if trusted is not None:  # the same file: trusted with its new time
                with contextlib.suppress(OSError):
                    self._trusted[key] = signature_of(os.stat(path))
            if key in self._files:
                self._files.move_to_end(key)
                return True
            try:  # a file the index does not know (made by another process)
                found = path.stat()
            except OSError:
                return False
            if not stat.S_ISREG(found.st_mode):
                return False
            self._files[key] = found.st_size
            self._used += found.st_size
            return True

    def _make_room(self, size: int) -> None:
        """Remove least recently used files until `size` more bytes fit the limit."""
        with self._files_lock:
            if self._used + size <= self.max_bytes:
                return
        try:
            keep = set(self._in_use())  # outside our locks: it takes the scheduler's
        except Exception:  # never guess: better over the limit than a job's input gone
            log.exception("cannot tell which images jobs need; nothing removed")
            return
        removed = freed = 0
        while True:
            with self._files_lock:
                if self._used + size <= self.max_bytes:
                    break
                victim = next(
                    (k for k in self._files if k not in keep and k not in self._reading), None
                )
                if victim is None:
                    log.warning(
                        "the image store passes its limit (%d bytes): what is left is in use",
                        self.max_bytes,
                    )
                    break
                try:
                    self.path_for(victim).unlink(missing_ok=True)
                except OSError as exc:  # e.g. open in another process (Windows)
                    log.warning("could not remove image %s: %s", victim, exc)
                    keep.add(victim)
                    continue
                freed += self._files[victim]
                self._drop_locked(victim)
                removed += 1
        if removed:
            log.info("image store limit: removed %d least recently used (%d bytes)", removed, freed)

    def _added(self, key: str, size: int) -> None:
        with self._files_lock:
            self._drop_locked(key)
            self._files[key] = size
            self._used += size
            with contextlib.suppress(OSError):  # written here from pixels of this id
                self._trusted[key] = signature_of(os.stat(self.path_for(key)))

    def _remove(self, key: str) -> None:
        """A damaged file: deleted, and no longer counted."""
        with self._files_lock:
            self.path_for(key).unlink(missing_ok=True)
            self._drop_locked(key)

    def _drop(self, key: str) -> None:
        with self._files_lock:
            self._drop_locked(key)

    def _drop_locked(self, key: str) -> None:
        self._trusted.pop(key, None)
        size = self._files.pop(key, None)
        if size is not None:
            self._used -= size
