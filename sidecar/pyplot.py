"""matplotlib's pyplot, imported only if something uses it.

mediapipe's package imports its drawing helpers whatever part of it one asks for, and
they import `matplotlib.pyplot`: about 0.4 s and 16 MB at every start of the sidecar,
for plots it never draws. `defer_pyplot()`, called before mediapipe is imported, puts a
stand-in under that name; the first use of any of its names imports the real module,
which from then on answers for the stand-in too, so anything in the process that does
draw still can. Only the program's own process does this (see `cli._tune_process`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

NAME = "matplotlib.pyplot"


class _Deferred(types.ModuleType):
    """Stands in for the module `NAME` until one of its names is asked for."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # probes of what a module is (dunders) load nothing
            raise AttributeError(name)
        if sys.modules.get(NAME) is self:
            del sys.modules[NAME]
        return getattr(importlib.import_module(NAME), name)


def defer_pyplot() -> bool:
    """Put the stand-in in place, unless pyplot (or its stand-in) is there already;
    whether it was put."""
    if NAME in sys.modules:
        return False
    stand_in = _Deferred(NAME, "matplotlib.pyplot, imported on first use")
    stand_in.__spec__ = importlib.machinery.ModuleSpec(NAME, None)
    sys.modules[NAME] = stand_in
    return True
