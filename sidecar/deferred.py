"""Modules mediapipe imports for parts of it the sidecar never uses, imported only if
something does use them.

mediapipe's package imports its drawing helpers and its audio tasks whatever part of
it one asks for: the drawing helpers import matplotlib's pyplot (about 0.4 s and
16 MB), the audio tasks `sounddevice`, which looks for the PortAudio library (about
80 ms). The sidecar draws no plots and records no sound. `defer_unused()`, called
before mediapipe is imported, puts a stand-in under each name; the first use of any
of a stand-in's names imports the real module, which from then on answers for the
stand-in too, so anything in the process that does use them still can. Only the
program's own process does this (see `cli._tune_process`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

UNUSED = ("matplotlib.pyplot", "sounddevice")


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its names is asked for."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # probes of what a module is (dunders) load nothing
            raise AttributeError(name)
        module = self.__name__
        if sys.modules.get(module) is self:
            del sys.modules[module]
        return getattr(importlib.import_module(module), name)


def defer_unused(names: tuple[str, ...] = UNUSED) -> list[str]:
    """Put a stand-in under each of `names` not imported (nor stood in for) already;
    the names it stood in for."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        stand_in = _Deferred(name, f"{name}, imported on first use")
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = stand_in
        deferred.append(name)
    return deferred
