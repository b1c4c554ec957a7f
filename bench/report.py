"""Small helpers shared by the benchmarks: timing, medians, Markdown + JSON reports."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_report(
    name: str,
    title: str,
    header: list[str],
    rows: list[list[Any]],
    meta: dict[str, Any],
    *,
    directory: Path = RESULTS,
) -> str:
    """Write `<name>.md` and `<name>.json` under `directory`; return the Markdown."""
    lines = [
        f"# {title}",
        "",
        f"Machine: {meta['machine']}  ",
        f"Input: {meta['input']}  ",
        f"Runs: median of {meta['runs']}  ",
    ]
    lines += [
        f"{key.replace('_', ' ').capitalize()}: {value}  "
        for key, value in meta.items()
        if key not in ("machine", "input", "runs")
    ]
    lines += [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.md").write_text(text, encoding="utf-8")
    payload = {**meta, "header": header, "rows": rows}
    (directory / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return text


def arguments(doc: str, quick_help: str, argv: list[str] | None) -> argparse.Namespace:
    """The flags every benchmark takes: --quick (CI), --runs, --out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--out", type=Path, help="report folder (default bench/results)")
    return parser.parse_args(argv)


def publish(
    args: argparse.Namespace,
    name: str,
    title: str,
    header: list[str],
    rows: list[list[Any]],
    meta: dict[str, Any],
) -> None:
    """Write and print the report, as `<name>_quick` in quick mode."""
    name = f"{name}_quick" if args.quick else name
    directory = {"directory": args.out} if args.out else {}
    print(write_report(name, title, header, rows, meta, **directory))
