"""Step-by-step control of the synthetic engine, for tests that must not depend on
how long a step takes.

Attach a `Stepper` to a `SyntheticEngine` (`engine.stepper = Stepper()`) and each
step of every job blocks where it would have slept (after the step's work, before
its progress is reported, so still inside the step) until the test releases it:
`stepper.release(job_id)` lets one step of that job go, `stepper.release()` one step
of whichever job steps next, `stepper.open()` every step from then on. The test
waits for a job to get somewhere with `await stepper.reached(job_id, k)`: the job is
in its step k (1-based; k - 1 steps done and reported) or past it. Cancel and
pre-emption still happen at step boundaries: a job held in a step notices either
once that step is released. A step held longer than `timeout` seconds fails its job
with `StepperTimeout`, so a test that forgets to release does not hang the worker.
"""

from __future__ import annotations

import asyncio
import threading
import time


class StepperTimeout(RuntimeError):
    """A step waited longer than the stepper's timeout for a release."""


class Stepper:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._open = False
        self._any = 0  # steps any job may take
        self._permits: dict[str, int] = {}  # steps a given job may take
        self._at: dict[str, int] = {}  # job → the furthest step it has entered
        self._waiters: list[tuple[str, int, asyncio.AbstractEventLoop, asyncio.Future]] = []

    # the engine's side (the worker thread)

    def step(self, job_id: str, step: int) -> None:
        """Job `job_id` is in its step `step` (1-based): wait for a release."""
        with self._cond:
            self._at[job_id] = max(step, self._at.get(job_id, 0))
            self._wake(job_id)
            deadline = time.monotonic() + self.timeout
            while not self._take(job_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StepperTimeout(
                        f"job {job_id} waited {self.timeout:g} s in step {step} for "
                        "Stepper.release() or open(); did the test forget to release it?"
                    )
                self._cond.wait(left)

    def _take(self, job_id: str) -> bool:
        if self._open:
            return True
        if self._permits.get(job_id, 0) > 0:
            self._permits[job_id] -= 1
            return True
        if self._any > 0:
            self._any -= 1
            return True
        return False

    def _wake(self, job_id: str) -> None:
        at = self._at[job_id]
        keep = []
        for waiter in self._waiters:
            wanted, step, loop, future = waiter
            if wanted != job_id or at < step:
                keep.append(waiter)
                continue
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that test's loop is closed already
                pass
        self._waiters = keep

    # the test's side

    def release(self, job_id: str | None = None, n: int = 1) -> None:
        """Let `n` more steps of `job_id` go (of whichever job steps next when None);
        a release made before the job gets to its step is kept for it."""
        with self._cond:
            if job_id is None:
                self._any += n
            else:
                self._permits[job_id] = self._permits.get(job_id, 0) + n
            self._cond.notify_all()

    def open(self) -> None:
        """Every step, held now or to come, goes without waiting (as with no stepper,
        less the step's sleep)."""
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def at(self, job_id: str) -> int:
        """The furthest step `job_id` has entered (0 before its first)."""
        with self._cond:
            return self._at.get(job_id, 0)

    async def reached(self, job_id: str, step: int = 1, timeout: float = 10.0) -> None:
        """Until `job_id` is in its step `step` or past it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if self._at.get(job_id, 0) >= step:
                return
            waiter = (job_id, step, loop, future)
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            with self._cond:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                at = self._at.get(job_id, 0)
            raise AssertionError(
                f"job {job_id} not at step {step} within {timeout:g} s (at step {at})"
            ) from None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
