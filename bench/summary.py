"""The combined report: `report.md` (one table of every figure, product against
baseline), `report.json` (every run's values) and `latency.png` (what is visible over
a job's life, product against baseline)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .report import Figure

INTRO = """\
Every figure is measured side by side in one run. The product is the real sidecar
(`retouch-sidecar serve`, or `retouch-sidecar batch`) in its own process; the baseline is
the naive design in [`bench/naive/`](../naive/) (pickle cache keyed by the first 64 KB,
synchronous full-resolution Apply, full VAE decode per step sent as hex in SSE JSON, a
batch loop that loads the model per image), also in its own process; one harness drives
both over 127.0.0.1. The floor, where one can be computed, is the least the same work
takes on this machine, measured in the same run (the op's compute alone in one process,
or the same bytes by a plain `sendfile` or socket over loopback; for a rate, the most it
reaches): product, baseline and limit side by side. Values are medians over the runs
stated; **bold** marks where the product is worse. Run by `scripts/bench` (`--quick` in
CI, tiny sizes)."""


def _machine_short(text: str) -> str:
    return re.sub(r", Python [0-9.]+", "", text)


def markdown(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks: the product against the naive way",
        "",
        INTRO,
        "",
        f"Machine: {meta['machine']}  ",
        f"Mode: {meta['mode']}  ",
        f"Date: {meta['date']}, the whole run took {meta['seconds']:.0f} s  ",
    ]
    if meta.get("load"):
        spans = ", ".join(f"{name} {a:.1f}→{b:.1f}" for name, (a, b) in meta["load"].items())
        lines.append(
            f"Load average (1 min; the benchmark itself makes up to about 2) at each module's"
            f" start→end: {spans}  "
        )
    if meta.get("stalls"):
        spans = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in meta["stalls"].items())
        lines.append(
            "Longest stall of the harness's event loop while an event stream was open (the"
            f" sidecar drops a stream whose heartbeat pong is 10 s late): {spans}  "
        )
    lines += [
        "",
        "| # | figure | product | baseline | floor | ratio | runs | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        cells = [
            f.number,
            f.what,
            f.cell("product"),
            f.cell("baseline"),
            f.cell("floor"),
            f.ratio_cell(),
            str(f.runs),
            _machine_short(f.machine),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## How each was measured", ""]
    for f in figures:
        if not (f.product_how or f.baseline_how):
            continue
        how = f"- **{f.number}** product: {f.product_how}; baseline: {f.baseline_how}"
        how += f"; floor: {f.floor_how}." if f.floor_how else "."
        if f.note:
            how += f" {f.note[0].upper()}{f.note[1:]}."
        lines.append(how)
    lines += ["", "![Latency of visible output over a job](latency.png)", ""]
    if meta.get("details"):
        links = ", ".join(f"[{name}]({name}.md)" for name in meta["details"])
        lines += [f"Each module's own table: {links}.", ""]
    return "\n".join(lines)


def write_summary(
    figures: list[Figure], plot: dict[str, Any], meta: dict[str, Any], directory: Path
) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **meta}
    text = markdown(figures, meta)
    (directory / "report.md").write_text(text, encoding="utf-8")
    payload = {**meta, "figures": [f.to_json() for f in figures], "plot": plot}
    (directory / "report.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    plot_latency(plot, directory / "latency.png")
    return text


def _apply_curve(apply: dict) -> tuple[list[float], list[float], list[str]]:
    """Share of full resolution on screen over time: 1/8 after the draft, 1/4, 1/2,
    then the final level tile by tile, and all of it once the result is in."""
    shares = {"draft": 1 / 8, "preview": 1 / 4, "refine": 1 / 2}
    times, values, labels = [0.0], [0.0], [""]
    for point in apply["product"]:
        if point["level"] == "final" and point.get("total"):
            share = 0.5 + 0.5 * point["step"] / point["total"]
        else:
            share = shares.get(point["level"], 1.0)
        times.append(point["t"])
        values.append(max(share, values[-1]))
        labels.append(point["level"])
    times.append(apply["product_layer"])
    values.append(1.0)
    labels.append("full result")
    return times, values, labels


def plot_latency(plot: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [name for name in ("apply", "diffusion") if name in plot]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.2 * max(len(panels), 1), 4.2))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    if not panels:
        axes[0].text(0.5, 0.5, "no latency data in this run", ha="center", va="center")
        axes[0].set_axis_off()
    for axis, name in zip(axes, panels, strict=False):
        if name == "apply":
            apply = plot["apply"]
            times, values, labels = _apply_curve(apply)
            axis.step(
                times, values, where="post", color="tab:blue", label="product (run of median)"
            )
            axis.plot(times[1:], values[1:], "o", color="tab:blue", markersize=4)
            for t, v, label in zip(times, values, labels, strict=True):
                if label and label != "final":
                    axis.annotate(label, (t, v), textcoords="offset points", xytext=(4, -10))
            naive = apply["naive"]
            axis.step([0, naive, naive * 1.05], [0, 1, 1], where="post", color="tab:red")
            axis.plot([naive], [1], "s", color="tab:red", label="naive: full result only (median)")
            axis.set_title(f"Apply, {apply['size']} 16-bit: what is on screen")
            axis.set_ylabel("share of full resolution shown")
        else:
            diffusion = plot["diffusion"]
            for key, color, label in (
                ("product", "tab:blue", "product (x0 → RGB at 1/8, ≤ 5/s)"),
                ("naive", "tab:red", "naive (full VAE decode every step)"),
            ):
                points = diffusion[key]
                axis.step(
                    [0] + [p["t"] for p in points],
                    [0] + [p["step"] / p["total"] for p in points],
                    where="post",
                    color=color,
                )
                axis.plot(
                    [p["t"] for p in points],
                    [p["step"] / p["total"] for p in points],
                    "o",
                    color=color,
                    markersize=3,
                    label=label,
                )
            axis.set_title(f"Denoising previews, {diffusion['what']} (runs of median rate)")
            axis.set_ylabel("denoising step shown (share of steps)")
        axis.set_xlabel("seconds after the request")
        axis.set_ylim(0, 1.08)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    fig.suptitle("Latency of visible output over a job's progress", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
