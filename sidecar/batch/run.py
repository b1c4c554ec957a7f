"""The run: each file's job submitted in order (heroes first), at most `WINDOW` of them
unfinished at once, each file ending as its job ends, on any client of the sidecar
(`SidecarApi`: the real one, or the fake in tests).

With a sidecar on this machine (`client.local`) no pixels cross the connection: the
sidecar reads each input file itself (`register_file`: no second copy of it is stored)
and writes each output file when its job is done (the job's `output`), while the
worker goes on with the next image; each image's final renders on two threads. The
next file is taken only once no submitted job waits to start (`AHEAD`), so the
sidecar holds two decoded inputs, and one result being written. (The next image's
analysis is not worked out ahead beside the render: both cores are busy with the
render's tiles already, and it held some 50 MB more at the peak for a batch about 5 %
sooner.)
Otherwise each file is uploaded, and its result fetched and written here. Either way
at most `WINDOW` jobs are unfinished at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..client import CONNECTION_FAILED, JobEnd, JobTracker, SidecarApi, SidecarError
from ..client.tracker import GIVE_UP_S
from ..imaging import psd
from ..schema import TERMINAL_STATES, JobCreated, JobEvent, JobRequest, Started
from .display import Display
from .outputs import result_format, upload_body, write_output
from .plan import FileTask
from .prior import SessionPrior
from .recipe import Recipe
from .report import Outcome, Report

CONNECT_WAIT_S = 5.0
WINDOW = 3  # jobs submitted and not yet ended: one written, one running, one ready
AHEAD = 1  # with the sidecar on this machine: submitted jobs not yet started
RETRY_S = 0.5  # how often a call is tried again while the sidecar cannot be reached
SETTLE_S = 5.0  # how long an interrupted submit is awaited, to cancel its job
# what a sidecar that cannot read our files answers (one older than the route: 405):
# then they are uploaded
NOT_OUR_FILES = frozenset({"file_not_found", "file_unreadable", "method_not_allowed"})
T = TypeVar("T")


async def process(
    client: SidecarApi, tasks: list[FileTask], recipe: Recipe, display: Display, report: Report
) -> None:
    """Submit the tasks a window at a time, and end each as its job ends (fetching and
    writing its result where the sidecar does not). Jobs not ended when this is
    interrupted are cancelled."""
    tracker = JobTracker(client, lambda task, event: shoot.on_event(task, event))
    following = asyncio.create_task(tracker.run())
    shoot = _Shoot(client, recipe, tracker, report, display)
    submitting = None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.connected.wait(), CONNECT_WAIT_S)
        submitting = asyncio.create_task(shoot.submit_all(tasks))
        submitting.add_done_callback(lambda task: _wake_on_crash(task, tracker.ended))
        for _ in tasks:
            item = await tracker.ended.get()
            if isinstance(item, BaseException):
                raise item
            outcome = await shoot.collect(*item)
            report.outcomes.append(outcome)
            display.finished(outcome)
            shoot.ended(item[0])
    finally:
        for task in (submitting, following):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await tracker.cancel_all()


class _Shoot:
    """The submits and the ends of one run's files."""

    def __init__(
        self,
        client: SidecarApi,
        recipe: Recipe,
        tracker: JobTracker,
        report: Report,
        display: Display,
    ) -> None:
        self.client = client
        self.recipe = recipe
        self.tracker = tracker
        self.report = report
        self.display = display
        self.local = bool(getattr(client, "local", False))
        self.slots = asyncio.Semaphore(WINDOW)  # one taken per file until it has ended
        self.waiting: set[FileTask] = set()  # submitted, not yet started (AHEAD)
        self.by_sidecar: set[FileTask] = set()  # those whose output the sidecar writes
        self.started = asyncio.Event()  # set whenever one of them starts or ends

    def on_event(self, task: FileTask, event: JobEvent) -> None:
        if isinstance(event, Started):
            self._not_waiting(task)
        self.display.job_event(task.source.name, event)

    def ended(self, task: FileTask) -> None:
        self._not_waiting(task)
        self.slots.release()

    def _not_waiting(self, task: FileTask) -> None:
        self.waiting.discard(task)
        self.started.set()

    async def _room(self) -> None:
        """A slot of the window, and, with the sidecar on this machine, no more than
        AHEAD jobs waiting to start."""
        await self.slots.acquire()
        while self.local and len(self.waiting) >= AHEAD:
            self.started.clear()
            await self.started.wait()

    async def submit_all(self, tasks: list[FileTask]) -> None:
        prior = SessionPrior(self.recipe)
        for task in tasks:
            await self._room()
            job_id = None
            if self.report.refused:
                end = JobEnd("failed", code="not_submitted", message=self.report.refused)
                self.tracker.ended.put_nowait((task, job_id, end))
                continue
            try:
                image_id = await self._image(task)
                params = prior.params()
                await prior.learn(self.client, image_id)
                output = self._output(task)
                request = self.recipe.job(image_id, task.source.name, task.hero, params, output)
                self.waiting.add(task)
                answer = await self._submit(request, task)
            except OSError as exc:
                end = JobEnd("failed", code="unreadable", message=exc.strerror or str(exc))
            except psd.PsdError as exc:
                end = JobEnd("failed", code=exc.code, message=exc.message)
            except SidecarError as exc:
                if exc.code == "invalid_request":  # the same body for every file: stop here
                    self.report.refused = exc.message
                end = JobEnd("failed", code=exc.code, message=exc.message)
            else:
                job_id = answer.job_id
                if answer.state not in TERMINAL_STATES:
                    if answer.cached:  # its output is written from the cache: no wait
                        self._not_waiting(task)
                    continue  # watched: it ends through the tracker
                end = JobEnd.of_status(answer)  # answered from the result cache
            self.tracker.ended.put_nowait((task, job_id, end))

    async def _image(self, task: FileTask) -> str:
        """The image id of the task's input: read by the sidecar, or uploaded. A sidecar
        that cannot read our files (another user's, a sandboxed service, an older one
        without the route) gets this file and the rest uploaded, and its results are
        fetched and written here."""
        if self.local:
            path = str(task.source.absolute())
            try:
                return (await _retrying(lambda: self.client.register_file(path))).image_id
            except SidecarError as exc:
                if exc.code not in NOT_OUR_FILES or not task.source.is_file():
                    raise
                self.local = False
        data, content_type = await asyncio.to_thread(upload_body, task.source)
        return (await _retrying(lambda: self.client.upload(data, content_type))).image_id

    def _output(self, task: FileTask) -> dict | None:
        """Where the sidecar writes the task's output, when it shares our files."""
        if not self.local:
            return None
        self.by_sidecar.add(task)
        return {"path": str(task.target.absolute()), "source": str(task.source.absolute())}

    async def _submit(self, request: JobRequest, task: FileTask) -> JobCreated:
        """Submit, and watch the job unless it has ended already. Interrupted while the
        sidecar may have taken it, the job is still watched, so it is cancelled with
        the others (else it would run, and write its output, after the run ends)."""
        call = asyncio.ensure_future(_retrying(lambda: self.client.submit(request)))
        try:
            answer = await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                answer = await asyncio.wait_for(call, SETTLE_S)
                if answer.state not in TERMINAL_STATES:
                    self.tracker.watched[answer.job_id] = task
            raise
        if answer.state not in TERMINAL_STATES:
            await self.tracker.watch(answer.job_id, task)
        return answer

    async def collect(self, task: FileTask, job_id: str | None, end: JobEnd) -> Outcome:
        name = task.source.name
        if end.state != "done" or job_id is None:
            return Outcome(name, "failed", job_id, end.code or end.state, end.message)
        if task not in self.by_sidecar:  # fetched and written here
            try:
                data = await self.client.result(job_id, {"format": result_format(task.target)})
                await asyncio.to_thread(
                    write_output, task.target, data, task.source, self.recipe.op
                )
            except SidecarError as exc:
                return Outcome(name, "failed", job_id, exc.code, exc.message)
            except (OSError, ValueError) as exc:
                return Outcome(name, "failed", job_id, "write_failed", str(exc))
            except MemoryError:
                message = "not enough memory to write it"
                return Outcome(name, "failed", job_id, "out_of_memory", message)
        return Outcome(name, "cached" if end.cached else "done", job_id)


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, tried again while the sidecar cannot be reached (it restarts, say),
    for up to the tracker's GIVE_UP_S."""
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        try:
            return await call()
        except SidecarError as exc:
            if exc.code != CONNECTION_FAILED or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(RETRY_S)


def _wake_on_crash(task: asyncio.Task, ended: asyncio.Queue) -> None:
    if not task.cancelled() and task.exception() is not None:
        ended.put_nowait(task.exception())
