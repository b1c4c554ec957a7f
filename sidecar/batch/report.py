"""Each file's outcome, and the summary line and exit code of the whole command."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("done", "cached", "skipped", "failed")


@dataclass
class Outcome:
    name: str
    status: str  # done | cached | skipped | failed
    job_id: str | None = None
    code: str | None = None
    message: str = ""


@dataclass
class Report:
    """Outcomes in the order they came back (skipped files first)."""

    total: int
    outcomes: list[Outcome] = field(default_factory=list)
    refused: str | None = None  # the sidecar refused the request itself (e.g. a bad --param)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in STATUSES]
        if len(self.outcomes) < self.total:
            parts.append(f"{self.total - len(self.outcomes)} not finished")
        text = f"summary: {self.total} images: {', '.join(parts)}"
        failures = [f"{o.name}: {o.code}" for o in self.outcomes if o.status == "failed"]
        return text + (f" [{'; '.join(failures)}]" if failures else "")

    @property
    def exit_code(self) -> int:
        if self.refused:
            return 2
        return 1 if self.count("failed") else 0
