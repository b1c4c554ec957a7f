"""`retouch-sidecar apply` and `batch` from their parsed arguments: plan, reach (or
start) a sidecar, run, report; the exit code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from ..client import SidecarError, connect
from ..cluster import ClusterAddress, ClusterUnavailable, need_ray, parse_address
from ..settings import Settings
from ..token import load_or_create_token
from .cluster_display import ClusterDisplay
from .display import Display
from .plan import FileTask, plan_apply, plan_batch
from .recipe import Recipe, UsageError, recipe_from_args
from .report import Report
from .run import process

EXIT_INTERRUPTED = 130


async def run_tasks(
    tasks: list[FileTask],
    recipe: Recipe,
    *,
    port: int,
    token: str,
    start_app: Callable[[], Any],
    display: Display,
    report: Report,
) -> None:
    """Runs the tasks on the sidecar at `port`, or on `start_app()` (the app that the
    composition root builds) served in this process for the run."""
    async with connect(port, token, start_app) as (client, in_process):
        display.note("sidecar: started in this process" if in_process else f"sidecar: port {port}")
        with display:
            await process(client, tasks, recipe, display, report)


def run_command(args: argparse.Namespace, settings: Settings, start_app: Callable[[], Any]) -> int:
    """`apply` and `batch` from their parsed arguments; returns the exit code."""
    on_cluster = getattr(args, "cluster", None) is not None
    try:
        recipe = recipe_from_args(args)
        address = cluster_address(args) if on_cluster else None
        if args.command == "batch":
            tasks, skipped = plan_batch(args.in_dir, args.out_dir, args.hero)
        else:
            tasks, skipped = [plan_apply(args.input, args.output)], []
    except UsageError as exc:
        print(f"retouch-sidecar: {exc}", file=sys.stderr)
        return 2
    report = Report(len(tasks) + len(skipped))
    console = Console(highlight=False)
    display = (ClusterDisplay if on_cluster else Display)(report.total, console)
    for outcome in skipped:
        report.outcomes.append(outcome)
        display.finished(outcome)
    try:
        if tasks and on_cluster:
            from .on_cluster import run_on_cluster

            run_on_cluster(
                tasks,
                recipe,
                address,
                settings=settings,
                display=display,
                report=report,
                worker_cpus=args.worker_cpus,
            )
        elif tasks:
            token = load_or_create_token(settings.token_path)
            asyncio.run(
                run_tasks(
                    tasks,
                    recipe,
                    port=settings.port,
                    token=token,
                    start_app=start_app,
                    display=display,
                    report=report,
                )
            )
    except KeyboardInterrupt:
        stopped = "workers stopped" if on_cluster else "unfinished jobs cancelled"
        display.note(report.summary() + f" (interrupted; {stopped})")
        return EXIT_INTERRUPTED
    except SidecarError as exc:  # reached, but refused our token
        print(f"retouch-sidecar: sidecar on port {settings.port}: {exc}", file=sys.stderr)
        return 2
    except ClusterUnavailable as exc:  # no cluster at the address, or too small for a worker
        print(f"retouch-sidecar: {exc}", file=sys.stderr)
        return 2
    display.note(report.summary())
    if report.refused:
        print(f"retouch-sidecar: the sidecar refused the job: {report.refused}", file=sys.stderr)
    return report.exit_code


def cluster_address(args: argparse.Namespace) -> ClusterAddress:
    """`--cluster` and `--worker-cpus` checked, and ray there: else a UsageError (exit 2)
    that says what to change or how to install ray."""
    try:
        address = parse_address(args.cluster)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.worker_cpus < 1:
        raise UsageError(f"--worker-cpus {args.worker_cpus}: at least 1")
    try:
        need_ray()
    except ClusterUnavailable as exc:
        raise UsageError(str(exc)) from None
    return address
