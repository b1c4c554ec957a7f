"""The benchmark report: ratios that say which side won, and the files it writes."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.memory import PeakRss, run_peak_mb
from bench.report import Figure
from bench.summary import write_summary


def test_ratio_says_how_many_times_better_the_product_is():
    faster = Figure("1", "latency", "ms", [100.0, 120.0, 110.0], [1000.0, 1100.0, 900.0])
    assert faster.ratio == 1000.0 / 110.0
    assert faster.ratio_cell() == "product 9.09× faster"
    higher = Figure("8", "upload", "MB/s", [900.0], [300.0], lower_is_better=False)
    assert higher.ratio_cell() == "product 3.00× faster"


def test_a_product_that_loses_is_marked_in_bold():
    slower = Figure("7b", "key time", "ms", [20.0], [0.05], words=("faster", "slower"))
    assert slower.ratio_cell() == "**product 400× slower**"
    assert slower.cell("product") == "20.0 ms" and slower.cell("baseline") == "0.05 ms"


def test_a_ratio_within_noise_is_called_about_the_same():
    close = Figure("5b", "step rate", "steps/s", [10.4], [10.5], lower_is_better=False)
    assert close.ratio_cell() == "about the same (product 0.99×)"


def test_text_cells_have_no_ratio():
    shown = Figure("7c", "edit", "", [], [], product_text="noticed", baseline_text="missed")
    assert (shown.cell("product"), shown.cell("baseline"), shown.ratio_cell()) == (
        "noticed",
        "missed",
        "—",
    )


def test_summary_writes_markdown_json_and_the_latency_plot(tmp_path):
    figures = [
        Figure(
            "1",
            "first pixels",
            "ms",
            [300.0, 320.0],
            [1500.0, 1400.0],
            words=("sooner", "later"),
            machine="m",
        ),
        Figure("1 RSS", "peak RSS", "MB", [700.0], [600.0], words=("smaller", "larger")),
    ]
    plot = {
        "apply": {
            "size": "600×400",
            "product": [
                {"t": 0.1, "level": "draft", "step": None, "total": None},
                {"t": 0.2, "level": "final", "step": 2, "total": 4},
            ],
            "product_done": 0.3,
            "product_layer": 0.35,
            "naive": 0.5,
        },
        "diffusion": {
            "what": "tiny",
            "product": [{"t": 0.2, "step": 3, "total": 6}, {"t": 0.4, "step": 6, "total": 6}],
            "naive": [{"t": 0.1 * n, "step": n, "total": 6} for n in range(1, 7)],
        },
    }
    meta = {"machine": "m", "mode": "quick", "seconds": 1.0, "details": ["retouch"]}
    text = write_summary(figures, plot, meta, tmp_path)
    assert "| 1 | first pixels | 310 ms | 1,450 ms | — | product 4.68× sooner | 2 | m |" in text
    assert "**product 1.17× larger**" in text
    data = json.loads((tmp_path / "report.json").read_text())
    assert [f["number"] for f in data["figures"]] == ["1", "1 RSS"]
    assert data["figures"][0]["product"] == [300.0, 320.0]
    assert (tmp_path / "report.md").read_text() == text
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The child spikes (200 MB, freed at once) when told to on its stdin, says so on its
# stdout, and lives on until its stdin closes.
SPIKE = (
    "import sys; sys.stdin.readline(); b = bytearray(200_000_000); del b; "
    "print('freed', flush=True); sys.stdin.read()"
)


class EndsOnceWatched:
    """The child as run_peak_mb sees it: told to end (its stdin closed) at run_peak_mb's
    second look, so it has read the child's memory at least once while it lived."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.looks = 0

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        self.looks += 1
        if self.looks == 2:
            self.proc.stdin.close()
        return self.proc.poll()


def test_peak_rss_catches_a_short_spike_of_a_child_process():
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with subprocess.Popen([sys.executable, "-c", SPIKE], **pipes) as child:
        try:
            peak = PeakRss(child.pid)
            with peak.measure():
                child.stdin.write("spike\n")
                child.stdin.flush()
                assert child.stdout.readline() == "freed\n"
            status, whole_life = run_peak_mb(EndsOnceWatched(child))
        finally:
            if child.poll() is None:
                child.kill()
    assert status == 0
    assert peak.mb is not None and peak.mb > 150
    assert whole_life > 150
