"""The run: every file's job submitted up front (the sidecar's queue orders them,
heroes first), each result fetched and written as its job ends, on any client of the
sidecar (`SidecarApi`: the real one, or the fake in tests)."""

from __future__ import annotations

import asyncio
import contextlib

from ..client import JobEnd, JobTracker, SidecarApi, SidecarError
from ..imaging import psd
from ..schema import TERMINAL_STATES
from .display import Display
from .outputs import result_format, upload_body, write_output
from .plan import FileTask
from .prior import SessionPrior
from .recipe import Recipe
from .report import Outcome, Report

CONNECT_WAIT_S = 5.0


async def process(
    client: SidecarApi, tasks: list[FileTask], recipe: Recipe, display: Display, report: Report
) -> None:
    """Submit every task, then fetch and write each result as its job ends. Jobs not
    ended when this is interrupted are cancelled."""
    tracker = JobTracker(client, lambda task, event: display.job_event(task.source.name, event))
    following = asyncio.create_task(tracker.run())
    submitting = None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.connected.wait(), CONNECT_WAIT_S)
        submitting = asyncio.create_task(_submit_all(client, tasks, recipe, tracker, report))
        submitting.add_done_callback(lambda task: _wake_on_crash(task, tracker.ended))
        for _ in tasks:
            item = await tracker.ended.get()
            if isinstance(item, BaseException):
                raise item
            outcome = await _collect(client, recipe.op, *item)
            report.outcomes.append(outcome)
            display.finished(outcome)
    finally:
        for task in (submitting, following):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await tracker.cancel_all()


async def _submit_all(
    client: SidecarApi,
    tasks: list[FileTask],
    recipe: Recipe,
    tracker: JobTracker,
    report: Report,
) -> None:
    prior = SessionPrior(recipe)
    for task in tasks:
        job_id = None
        if report.refused:
            end = JobEnd("failed", code="not_submitted", message=report.refused)
            tracker.ended.put_nowait((task, job_id, end))
            continue
        try:
            data, content_type = await asyncio.to_thread(upload_body, task.source)
            image_id = (await client.upload(data, content_type)).image_id
            params = prior.params()
            await prior.learn(client, image_id)
            answer = await client.submit(recipe.job(image_id, task.source.name, task.hero, params))
        except OSError as exc:
            end = JobEnd("failed", code="unreadable", message=exc.strerror or str(exc))
        except psd.PsdError as exc:
            end = JobEnd("failed", code=exc.code, message=exc.message)
        except SidecarError as exc:
            if exc.code == "invalid_request":  # the same body for every file: stop here
                report.refused = exc.message
            end = JobEnd("failed", code=exc.code, message=exc.message)
        else:
            job_id = answer.job_id
            if answer.state not in TERMINAL_STATES:
                await tracker.watch(job_id, task)
                continue
            end = JobEnd.of_status(answer)  # answered from the result cache
        tracker.ended.put_nowait((task, job_id, end))


def _wake_on_crash(task: asyncio.Task, ended: asyncio.Queue) -> None:
    if not task.cancelled() and task.exception() is not None:
        ended.put_nowait(task.exception())


async def _collect(
    client: SidecarApi, op: str, task: FileTask, job_id: str | None, end: JobEnd
) -> Outcome:
    name = task.source.name
    if end.state != "done" or job_id is None:
        return Outcome(name, "failed", job_id, end.code or end.state, end.message)
    try:
        data = await client.result(job_id, {"format": result_format(task.target)})
        await asyncio.to_thread(write_output, task.target, data, task.source, op)
    except SidecarError as exc:
        return Outcome(name, "failed", job_id, exc.code, exc.message)
    except (OSError, ValueError) as exc:
        return Outcome(name, "failed", job_id, "write_failed", str(exc))
    except MemoryError:
        return Outcome(name, "failed", job_id, "out_of_memory", "not enough memory to write it")
    return Outcome(name, "cached" if end.cached else "done", job_id)
