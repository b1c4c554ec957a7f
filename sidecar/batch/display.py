"""The command's progress on the console (rich): an overall bar and the current image."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from ..schema import JobEvent, Requeued, StageEvent, Started
from ..schema import Progress as ProgressEvent
from .report import Outcome


class Display:
    """An overall bar (images done of all, time left) and a line for the image being
    worked on: its stage and progress. Where the console is not a terminal (CI, a
    pipe) the bars are off and only plain lines are printed."""

    def __init__(self, total: int, console: Console) -> None:
        self._overall_bar(total, console, TimeRemainingColumn())
        self.current = self.progress.add_task("", total=1.0, detail="waiting")

    def _overall_bar(self, total: int, console: Console, *columns) -> None:
        """The bars (a name, the bar, its percentage, a detail field, then `columns`)
        with the overall one, images done of `total`; off where not a terminal."""
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            *columns,
            console=console,
            disable=not console.is_terminal,
        )
        self.total = total
        self.count = 0  # outcomes shown, skipped ones included
        self.overall = self.progress.add_task("images", total=total, detail=f"0/{total}")

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def job_event(self, name: str, event: JobEvent) -> None:
        if isinstance(event, Started):
            self.progress.update(self.current, description=name, completed=0, detail="started")
        elif isinstance(event, StageEvent):
            detail = f"{event.stage} ({event.index + 1}/{event.count})"
            self.progress.update(self.current, description=name, detail=detail)
        elif isinstance(event, ProgressEvent):
            eta = event.eta_s
            detail = event.stage + (f", {eta:.0f} s left" if eta is not None else "")
            self.progress.update(
                self.current, description=name, completed=event.progress, detail=detail
            )
        elif isinstance(event, Requeued):
            self.progress.update(self.current, detail=f"requeued: {event.reason}")

    def finished(self, outcome: Outcome) -> None:
        self.count += 1
        self.progress.update(self.overall, advance=1, detail=f"{self.count}/{self.total}")
        line = f"{outcome.status:<8} {outcome.name}"
        if outcome.status == "failed":
            line += f": {outcome.code}" + (f" ({outcome.message})" if outcome.message else "")
        self.note(line)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
