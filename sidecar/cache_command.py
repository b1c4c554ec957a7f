"""`retouch-sidecar cache info | clear`: the image store, from the command line.

`clear` is refused while a sidecar answers on the port: it may have queued jobs whose
inputs, or results a client has yet to fetch, are in the store. A sidecar serving
the same folder on another port is not seen; stop it first.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .cache.usage import DEFAULT_LIMIT_TEXT, clear, default_limit, human, stored_files
from .settings import Settings


def run_cache(args, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    root = settings.images_dir
    if args.action == "info":
        return info(settings, out)
    from .service import running_health

    if settings.port and running_health(settings.port) is not None:
        print(
            f"retouch-sidecar: a sidecar answers on port {settings.port}; stop it first "
            "(its jobs may need the stored images), then run cache clear again",
            file=sys.stderr,
        )
        return 1
    count, size = clear(root)
    print(f"removed {count} stored images ({human(size)}) from {root}", file=out)
    return 0


def info(settings: Settings, out: TextIO) -> int:
    root = settings.images_dir
    files = stored_files(root)
    used = sum(f.size for f in files)
    if settings.store_max_bytes is not None:
        limit, how = settings.store_max_bytes, "set"
    else:
        limit, how = default_limit(root, used), f"default: {DEFAULT_LIMIT_TEXT}, as of now"
    print(f"store:  {root}", file=out)
    print(f"used:   {used} bytes ({human(used)})", file=out)
    print(f"limit:  {limit} bytes ({human(limit)}; {how})", file=out)
    print(f"images: {len(files)} (uploads and results)", file=out)
    return 0
