"""The batch's run (sidecar.batch.run.process) on the fake sidecar: every result is
fetched and written once, whatever the sidecar sends twice; a cached answer, a failed
job and a refused request end as they should."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from helpers import encode_png
from rich.console import Console

from sidecar.batch import Display, FileTask, Recipe, Report, process
from sidecar.batch.run import AHEAD, WINDOW
from sidecar.client import FakeSidecar, SidecarError

SIDE = 16


def _shoot(tmp_path, names: list[str]) -> list[FileTask]:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    tasks = []
    for n, name in enumerate(names):
        pixels = np.full((SIDE, SIDE, 3), 40 + n, np.uint8)
        (tmp_path / "in" / name).write_bytes(encode_png(pixels))
        tasks.append(FileTask(tmp_path / "in" / name, tmp_path / "out" / name))
    return tasks


async def _run(fake: FakeSidecar, tasks: list[FileTask], script) -> tuple[Report, str]:
    out = io.StringIO()
    report = Report(len(tasks))
    display = Display(report.total, Console(file=out, highlight=False))
    sidecar_side = asyncio.create_task(script(fake))
    try:
        await asyncio.wait_for(process(fake, tasks, Recipe("beauty"), display, report), 20)
    finally:
        sidecar_side.cancel()
    return report, out.getvalue()


RESULT = encode_png(np.full((SIDE, SIDE, 3), 200, np.uint8))


async def test_each_output_is_written_once_when_the_sidecar_repeats_itself(tmp_path):
    tasks = _shoot(tmp_path, ["a.png", "b.png"])

    async def script(fake: FakeSidecar):
        while True:
            job_id = await fake.submitted.get()
            fake.emit(job_id, "started")
            fake.emit(job_id, "progress", progress=0.5, stage="final")
            done = fake.finish(job_id, result=RESULT)
            fake.deliver(done)  # a second done, as a replay brings it
            fake.drop_streams()  # and a reconnection, whose resync sees it done again

    fake = FakeSidecar()
    report, printed = await _run(fake, tasks, script)
    assert [(o.name, o.status) for o in report.outcomes] == [("a.png", "done"), ("b.png", "done")]
    fetched = [job_id for method, job_id in fake.calls if method == "result"]
    assert sorted(fetched) == sorted(fake.requests) and len(fetched) == 2
    assert (tmp_path / "out" / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [line.split()[0] for line in printed.splitlines()] == ["done", "done"]


async def test_a_cached_answer_a_failure_and_an_unreadable_upload(tmp_path):
    tasks = _shoot(tmp_path, ["a.png", "b.png", "c.png"])

    def on_submit(job_id, request):
        if request.document_id == "a.png":  # the result cache answers
            fake.finish(job_id, result=RESULT, cached=True)

    async def script(fake: FakeSidecar):
        while True:
            job_id = await fake.submitted.get()
            if fake.requests[job_id].document_id == "b.png":
                fake.finish(job_id, "failed", code="out_of_memory", message="the GPU is full")

    fake = FakeSidecar()
    fake.on_submit = on_submit
    fake.fail("upload", SidecarError("invalid_image", "body is not a PNG file", status=422))
    report, _ = await _run(fake, [tasks[2], tasks[0], tasks[1]], script)
    assert [(o.name, o.status, o.code) for o in report.outcomes] == [
        ("c.png", "failed", "invalid_image"),
        ("a.png", "cached", None),
        ("b.png", "failed", "out_of_memory"),
    ]
    assert report.exit_code == 1


async def test_a_refused_request_stops_the_submits(tmp_path):
    tasks = _shoot(tmp_path, ["a.png", "b.png"])

    async def script(fake: FakeSidecar):
        await asyncio.Event().wait()

    fake = FakeSidecar()
    fake.fail("submit", SidecarError("invalid_request", "bad params for beauty", status=422))
    report, _ = await _run(fake, tasks, script)
    assert [(o.name, o.code) for o in report.outcomes] == [
        ("a.png", "invalid_request"),
        ("b.png", "not_submitted"),
    ]
    assert report.refused == "bad params for beauty" and report.exit_code == 2


async def test_with_a_sidecar_on_this_machine_files_go_by_path_one_job_ahead(tmp_path):
    names = [f"{n}.png" for n in "abcdefg"]
    tasks = _shoot(tmp_path, names)
    tasks = [FileTask(t.source, t.target, hero=t.source.name == "e.png") for t in tasks]
    tasks.sort(key=lambda t: not t.hero)  # as plan_batch orders them: heroes first
    unfinished: set[str] = set()
    most = {"unfinished": 0, "waiting": 0}

    def on_submit(job_id, request):
        unfinished.add(job_id)
        waiting = sum(fake.statuses[j].state == "queued" for j in unfinished)
        most["unfinished"] = max(most["unfinished"], len(unfinished))
        most["waiting"] = max(most["waiting"], waiting)

    async def script(fake: FakeSidecar):
        """One worker: a job starts when none runs, and ends when no further submit can
        come (the window is full, a job waits to start, or every file is in)."""
        waiting, running, submitted = [], [], 0
        while True:
            waiting.append(await fake.submitted.get())
            submitted += 1
            while waiting or running:
                if not running and waiting:
                    running.append(waiting.pop(0))
                    fake.emit(running[0], "started")
                full = len(unfinished) >= WINDOW or len(waiting) >= AHEAD
                if not (full or submitted == len(tasks)) or not running:
                    break
                job_id = running.pop()
                fake.finish(job_id, result=RESULT)
                unfinished.discard(job_id)

    fake = FakeSidecar()
    fake.local = True
    fake.on_submit = on_submit
    report, _ = await _run(fake, tasks, script)
    assert sorted(o.name for o in report.outcomes if o.status == "done") == sorted(names)
    assert most["waiting"] == AHEAD and most["unfinished"] <= WINDOW
    methods = [method for method, _ in fake.calls]
    assert "upload" not in methods and "result" not in methods  # no pixels crossed
    registered = [key for method, key in fake.calls if method == "register_file"]
    assert [Path(path).name for path in registered] == [t.source.name for t in tasks]
    assert registered[0].endswith("e.png")  # the hero first
    # its job analyses each image, on the worker: nothing is worked out ahead beside it
    assert not [key for method, key in fake.calls if method == "skin_tone"]
    for task in tasks:
        request = next(r for r in fake.requests.values() if r.document_id == task.source.name)
        assert request.output.path == str(task.target.absolute())
        assert request.output.source == str(task.source.absolute())
        assert task.target.read_bytes() == RESULT  # written "by the sidecar"


async def test_interrupted_while_the_sidecar_takes_a_job_that_job_is_cancelled_too(tmp_path):
    """Ctrl-C while a submit's answer is on its way: the job the sidecar took is still
    cancelled, so it does not run, and write its output, after the command ends."""
    tasks = _shoot(tmp_path, ["a.png"])
    taken, answer = asyncio.Event(), asyncio.Event()

    class SlowToAnswer(FakeSidecar):
        async def submit(self, request):
            created = await super().submit(request)  # taken: queued on the sidecar
            taken.set()
            await answer.wait()
            return created

    fake = SlowToAnswer()
    fake.local = True
    report = Report(len(tasks))
    display = Display(report.total, Console(file=io.StringIO()))
    run = asyncio.create_task(process(fake, tasks, Recipe("beauty"), display, report))
    await asyncio.wait_for(taken.wait(), 10)
    run.cancel()  # Ctrl-C
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 20)
    (job_id,) = fake.requests
    assert ("cancel", job_id) in fake.calls and fake.statuses[job_id].state == "cancelled"


async def test_a_sidecar_that_cannot_read_our_files_gets_them_uploaded(tmp_path):
    tasks = _shoot(tmp_path, ["a.png", "b.png"])

    async def script(fake: FakeSidecar):
        while True:
            job_id = await fake.submitted.get()
            fake.emit(job_id, "started")
            fake.finish(job_id, result=RESULT)

    fake = FakeSidecar()
    fake.local = True  # on this machine, but as another user, say
    fake.fail("register_file", SidecarError("file_unreadable", "permission denied", status=422))
    report, _ = await _run(fake, tasks, script)
    assert [(o.name, o.status) for o in report.outcomes] == [("a.png", "done"), ("b.png", "done")]
    methods = [method for method, _ in fake.calls]
    assert methods.count("register_file") == 1 and methods.count("upload") == 2
    assert methods.count("result") == 2  # fetched and written here
    assert all(request.output is None for request in fake.requests.values())
    assert (tmp_path / "out" / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
