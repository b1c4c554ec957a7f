"""The batch's run (sidecar.batch.run.process) on the fake sidecar: every result is
fetched and written once, whatever the sidecar sends twice; a cached answer, a failed
job and a refused request end as they should."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from helpers import encode_png
from rich.console import Console

from sidecar.batch import Display, FileTask, Recipe, Report, process
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
