"""Every benchmark in one run: the product against the naive way, figure by figure.

    .venv/bin/python -m bench                 # full size (about 12 minutes)
    .venv/bin/python -m bench --quick         # tiny sizes (CI, about a minute)
    .venv/bin/python -m bench --only retouch  # one module (repeatable)

Writes report.md, report.json and latency.png, plus each module's own table, to
bench/results/ (or --out). Each figure has the product, the baseline and, where one can
be computed, the floor (bench/floors.py); the report states the run's length, the load
average at each module's start and end, and the longest stall of the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

from . import stalls
from .report import Options, machine, write_report
from .summary import write_summary

MODULES = (
    "retouch",
    "cache",
    "diffusion",
    "batch",
    "image_upload",
    "queue",
    "scheduler",
    "cluster",
)


def _order(number: str) -> tuple[int, bool, str]:
    """1, 1b, 1 RSS, 2, …"""
    digits = "".join(c for c in number.split()[0] if c.isdigit())
    return int(digits or 0), "RSS" in number, number


def _load() -> float:
    """The 1-minute load average: how busy the machine was (other work skews figures)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few runs (CI)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5; quick 1-2)")
    parser.add_argument("--out", type=Path, help="report folder (default bench/results)")
    parser.add_argument("--only", action="append", choices=MODULES, help="run only these")
    args = parser.parse_args(argv)
    opts = Options(quick=args.quick, runs=args.runs)
    if args.out:
        opts.out = args.out
    started = time.perf_counter()
    figures, plot, details, failed = [], {}, [], []
    load: dict[str, list[float]] = {}
    stalled: dict[str, float] = {}
    for name in args.only or MODULES:
        if name == "diffusion" and importlib.util.find_spec("torch") is None:
            print("== diffusion: skipped (no torch: the diffusion extra)", file=sys.stderr)
            continue
        if name == "cluster" and importlib.util.find_spec("ray") is None:
            print("== cluster: skipped (no ray: the cluster extra)", file=sys.stderr)
            continue
        module_started = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        load[name] = [_load()]
        stalls.reset()
        outcome = asyncio.run(importlib.import_module(f"bench.{name}").run(opts))
        load[name].append(_load())
        if stalls.longest() is not None:  # None: no event stream was open
            stalled[name] = stalls.longest()
        figures += outcome.figures
        plot.update(outcome.plot)
        for detail in outcome.details:
            print(write_report(detail, opts.out))
            details.append(detail.name)
            if detail.meta.get("checks_passed") is False:
                failed.append(detail.name)
        print(f"   {time.perf_counter() - module_started:.1f} s", file=sys.stderr, flush=True)
    figures.sort(key=lambda f: _order(f.number))
    meta = {
        "machine": machine(),
        "mode": "quick (tiny sizes; not for quoting)" if opts.quick else "full",
        "seconds": time.perf_counter() - started,
        "details": details,
        "load": load,
        "stalls": stalled,
    }
    print(write_summary(figures, plot, meta, opts.out))
    if failed:
        print(f"checks failed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
