"""How the C heap treats freed memory in a process that works through a folder of
images, one after another.

Every image's working arrays have the same sizes as the last one's. By default glibc
gives each block over 128 KB to the kernel when it is freed (and each thread's arena
keeps its own), so the next image asks the kernel for the same memory again: fresh
pages, each zeroed and mapped on first touch, which on a virtual machine also goes back
to the host. Kept in one heap, the next image reuses them. Blocks over the largest
threshold glibc allows (32 MiB on 64-bit) are still mapped and unmapped each time.

Only where glibc's `mallopt` exists (Linux); elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
KEPT = (
    (M_ARENA_MAX, 1),  # one heap for all threads: a block one frees, another reuses
    (M_MMAP_THRESHOLD, 32 << 20),  # blocks up to glibc's most come from the heap
    (M_TRIM_THRESHOLD, 1 << 30),  # freed memory stays in the heap, up to 1 GiB at its top
    (M_TOP_PAD, 64 << 20),  # and the heap grows in steps of 64 MiB
)


def keep_freed_memory() -> bool:
    """Keep freed blocks in the heap for the next image (call before threads start);
    whether it was done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  glibc's (musl has no such tuning)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = all(mallopt(param, value) == 1 for param, value in KEPT)
    if not done:
        log.info("the C heap refused a setting; freed memory goes back as before")
    return done
