"""What the benchmarks share: options, timing, medians, the `Figure` record (product
against baseline, and the floor where one can be had) and the per-module Markdown + JSON
detail tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SAME = 1.03  # ratios this close to 1 are within a run's noise here


@dataclass
class Options:
    quick: bool = False
    runs: int | None = None  # overrides every figure's number of runs
    out: Path = RESULTS

    def n(self, full: int, quick: int) -> int:
        return self.runs or (quick if self.quick else full)

    @property
    def settle(self) -> float:
        """Seconds between the two sides' turns, so that work one server does behind
        its answer (a disk write) does not land on the other's measurement."""
        return 0.0 if self.quick else 0.5


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


def number(value: float) -> str:
    """Three significant figures, without exponents."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


@dataclass
class Figure:
    """One line of the report: the product and the baseline measured side by side, and
    where it can be computed the floor (bench/floors.py): the least the same work takes
    on this machine (for a rate, the most it reaches), measured in the same run."""

    number: str  # "1", "5a"
    what: str
    unit: str
    product: list[float]  # every run's value
    baseline: list[float]
    lower_is_better: bool = True
    words: tuple[str, str] = ("faster", "slower")  # the product is N× …
    product_how: str = ""
    baseline_how: str = ""
    machine: str = ""
    note: str = ""
    product_text: str | None = None  # for what is not a number
    baseline_text: str | None = None
    over_runs: int | None = None  # a peak taken over this many runs (RSS)
    floor: list[float] = field(default_factory=list)  # every run's value; none: "—"
    floor_how: str = ""

    @property
    def runs(self) -> int:
        return self.over_runs or max(len(self.product), len(self.baseline), 1)

    def _median(self, values: list[float]) -> float | None:
        return median(values) if values else None

    @property
    def ratio(self) -> float | None:
        """How many times better the product is (under 1: worse)."""
        product, baseline = self._median(self.product), self._median(self.baseline)
        if product is None or baseline is None or product <= 0 or baseline <= 0:
            return None
        return baseline / product if self.lower_is_better else product / baseline

    def cell(self, side: str) -> str:
        """The median of `side` (product, baseline or floor) with its unit."""
        if side == "floor":
            value = self._median(self.floor)
            return "—" if value is None else f"{number(value)} {self.unit}".strip()
        text = self.product_text if side == "product" else self.baseline_text
        if text is not None:
            return text
        value = self._median(self.product if side == "product" else self.baseline)
        return "n/a" if value is None else f"{number(value)} {self.unit}".strip()

    def ratio_cell(self) -> str:
        ratio = self.ratio
        if ratio is None:
            return "—"
        if 1 / SAME <= ratio <= SAME:
            return f"about the same (product {ratio:.2f}×)"
        if ratio >= 1:
            return f"product {number(ratio)}× {self.words[0]}"
        return f"**product {number(1 / ratio)}× {self.words[1]}**"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            product_median=self._median(self.product),
            baseline_median=self._median(self.baseline),
            floor_median=self._median(self.floor),
            ratio=self.ratio,
            runs=self.runs,
        )
        return data


def server_rss(number: str, what: str, peaks: tuple[float, float], machine: str, runs: int):
    """The peak RSS of the two servers (sidecar, naive server) over a figure's runs."""
    return Figure(
        f"{number} RSS",
        what,
        "MB",
        [peaks[0]],
        [peaks[1]],
        words=("smaller", "larger"),
        product_how="sidecar process, VmHWM",
        baseline_how="naive server process, VmHWM",
        machine=machine,
        over_runs=runs,
    )


@dataclass
class Detail:
    """A module's own table of extra measurements (`<name>.md` and `<name>.json`)."""

    name: str
    title: str
    header: list[str]
    rows: list[list[Any]]
    meta: dict[str, Any]


@dataclass
class Outcome:
    figures: list[Figure] = field(default_factory=list)
    details: list[Detail] = field(default_factory=list)
    plot: dict[str, Any] = field(default_factory=dict)  # series for latency.png


def write_report(detail: Detail, directory: Path = RESULTS) -> str:
    """Write `<name>.md` and `<name>.json` under `directory`; return the Markdown."""
    meta = detail.meta
    lines = [
        f"# {detail.title}",
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
        "| " + " | ".join(detail.header) + " |",
        "|" + "---|" * len(detail.header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in detail.rows]
    text = "\n".join(lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{detail.name}.md").write_text(text, encoding="utf-8")
    payload = {**meta, "header": detail.header, "rows": detail.rows}
    (directory / f"{detail.name}.json").write_text(
        json.dumps(payload, indent=2) + "\n", encoding="utf-8"
    )
    return text
