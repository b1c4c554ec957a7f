"""Which image a free worker gets next, and what becomes of an image whose worker died.

Images go out in the plan's order (heroes first, then by name), each to one worker at
a time; an image whose worker died goes out again before any new one, up to
`MAX_ATTEMPTS` times. No ray here: the driver (`dispatch.py`) asks and tells.

For `color`, the shoot's skin-tone prior is made as the single-machine batch makes it
(`sidecar.batch.prior.SessionPrior`): the first five images whose upload is taken are
measured and sent without a prior, and every image after them gets the mean of those
five tones. Here the first ones run in parallel, and the rest wait until their tones
are in; the tones are added in the plan's order, so the mean has the same bits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Protocol

from .items import Done, Item, Order

MAX_ATTEMPTS = 3  # an image that has killed its worker this often fails (`worker_lost`)


class Prior(Protocol):
    """The session prior (`SessionPrior`): what the schedule needs of it."""

    FIRST: int
    active: bool

    def add(self, tone: tuple[float, float] | None) -> None: ...

    def stop(self) -> None: ...

    def params(self) -> dict: ...


class Schedule:
    def __init__(
        self,
        items: list[Item],
        run: str,
        prior: Prior | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.run = run
        self.total = len(items)
        self.max_attempts = max_attempts
        self.ended: dict[int, Done] = {}  # item index → its end
        self._items = {item.index: item for item in items}
        self._waiting = deque(items)
        self._again: deque[Order] = deque()  # lost attempts, to be sent first
        self._prior = prior
        self._learning = prior is not None and prior.active
        self._learners: dict[int, Done | None] = {}  # the first images, while out: None
        self._params: dict = {}  # the prior for every image after the first ones

    @property
    def complete(self) -> bool:
        return len(self.ended) == self.total

    @property
    def learning(self) -> bool:
        """Still waiting for the first images' tones before sending the rest."""
        return self._learning

    def next(self) -> Order | None:
        """The order for a free worker; None when nothing may go out now (all sent, or
        the rest wait for the first images' tones)."""
        if self._again:
            return self._again.popleft()
        if not self._waiting:
            return None
        if self._learning:
            decoded = sum(1 for d in self._learners.values() if d is not None and d.decoded)
            out = sum(1 for d in self._learners.values() if d is None)
            if decoded + out >= self._first:
                return None
            item = self._waiting.popleft()
            self._learners[item.index] = None
            return Order(item, self.run, measure_tone=True)
        return Order(self._waiting.popleft(), self.run, prior=dict(self._params))

    def finished(self, order: Order, done: Done) -> None:
        """A worker answered for `order`: the image has ended."""
        index = order.item.index
        self.ended[index] = done
        if index in self._learners:
            self._learners[index] = done
            self._maybe_learned()

    def lost(self, order: Order, reason: str) -> Done | None:
        """The worker died on `order`: it goes out again (None), or, after
        `max_attempts`, it has failed (its end is returned)."""
        if order.attempt >= self.max_attempts:
            done = Done(
                order.item.name,
                "failed",
                "worker_lost",
                f"{order.attempt} workers died on it (last: {reason})",
            )
            self.finished(order, done)
            return done
        self._again.append(replace(order, attempt=order.attempt + 1))
        return None

    def abandon(self, code: str, message: str) -> list[Done]:
        """Every image not ended yet fails (no worker is left to do it)."""
        self._again.clear()
        self._waiting.clear()
        ends = []
        for index, item in sorted(self._items.items()):
            if index not in self.ended:
                self.ended[index] = done = Done(item.name, "failed", code, message)
                ends.append(done)
        return ends

    # -- the prior -------------------------------------------------------------------
    @property
    def _first(self) -> int:
        return self._prior.FIRST if self._prior is not None else 0

    def _maybe_learned(self) -> None:
        done = [d for d in self._learners.values() if d is not None]
        decoded = [d for d in done if d.decoded]
        out = len(self._learners) - len(done)
        failed = any(d.tone_failed for d in decoded)
        if self._learning and (len(decoded) >= self._first or failed or not (out or self._waiting)):
            self._learn()

    def _learn(self) -> None:
        """The tones, in the plan's order, as the single-machine batch adds them."""
        assert self._prior is not None
        for index in sorted(self._learners):
            done = self._learners[index]
            if done is None or not done.decoded:
                continue
            if done.tone_failed:
                self._prior.stop()
                break
            self._prior.add(done.tone)
        self._params = self._prior.params()
        self._learning = False
