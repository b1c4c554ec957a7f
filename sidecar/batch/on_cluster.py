"""`batch --cluster`: the plan's files done on a Ray cluster (`sidecar.cluster`) instead
of through a sidecar. The files are the batch's as ever: read with `upload_body`,
asked for with the recipe's request, written with `write_output`; the workers do what
the sidecar would in between, so the outputs have the same bits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..client import SidecarError
from ..cluster import ClusterAddress, Ended, Event, Item, Setup, run_shoot
from ..cluster.work import check_request
from ..errors import ApiError
from ..imaging import Limits
from ..schema import ErrorDetail, JobRequest
from ..settings import Settings
from .cluster_display import ClusterDisplay
from .outputs import Write, result_format, upload_body, write_output
from .plan import FileTask
from .prior import SessionPrior
from .recipe import Recipe
from .report import Outcome, Report

ANY_IMAGE_ID = "0" * 64  # a request's shape is checked before any image is read


@dataclass(frozen=True)
class ShootFiles:
    """The batch's files, as every worker reads and writes them (`cluster.FileIO`)."""

    recipe: Recipe

    def read(self, source: Path) -> tuple[bytes | memoryview, str]:
        return upload_body(source)

    def request(self, image_id: str, name: str, hero: bool, prior: dict) -> JobRequest:
        return self.recipe.job(image_id, name, hero, prior)

    def result_format(self, target: Path) -> str:
        return result_format(target)

    def write(self, target: Path, result: bytes, source: Path, write: Write) -> None:
        write_output(target, result, source, self.recipe.op, write=write)


def refusal(recipe: Recipe) -> str | None:
    """Why every job of the shoot would be refused (a bad --param), in the sidecar's
    words; None when the request is good. Checked once, before any worker starts."""
    try:
        request = recipe.job(ANY_IMAGE_ID, "check", False)
        check_request(request)
    except SidecarError as exc:
        return exc.message
    except ApiError as exc:
        detail = ErrorDetail(code=exc.code, message=exc.message, details=exc.details)
        return SidecarError.from_detail(detail).message
    return None


def run_on_cluster(
    tasks: list[FileTask],
    recipe: Recipe,
    address: ClusterAddress,
    *,
    settings: Settings,
    display: ClusterDisplay,
    report: Report,
    worker_cpus: int = 1,
    files: ShootFiles | None = None,
) -> None:
    """Every task done on the cluster at `address`, each outcome in `report` as it
    ends. A request the engine would refuse fails every file, as the sidecar would."""
    refused = refusal(recipe)
    if refused is not None:
        report.refused = refused
        for task in tasks:
            outcome = Outcome(task.source.name, "failed", code="not_submitted", message=refused)
            report.outcomes.append(outcome)
            display.finished(outcome)
        return
    items = [
        Item(index, task.source.name, task.source, task.target, task.hero)
        for index, task in enumerate(tasks)
    ]
    setup = Setup(
        files or ShootFiles(recipe),
        Limits(settings.max_megapixels, settings.max_side),
        settings.max_upload_bytes,
    )

    def on_event(event: Event) -> None:
        display.cluster_event(event)
        if isinstance(event, Ended):
            done = event.done
            status = done.status
            outcome = Outcome(done.name, status, code=done.code, message=done.message)
            report.outcomes.append(outcome)
            display.finished(outcome)

    with display:
        run_shoot(
            items,
            setup,
            address,
            worker_cpus=worker_cpus,
            prior=SessionPrior(recipe),
            on_event=on_event,
        )
    display.note(display.rate_line())
