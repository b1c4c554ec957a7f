"""Predictive prefetch: which action the user is likely to apply next.

A first-order Markov model of the user's actions: for each action, how often each
other action followed it on the same document. The sidecar serves one user, so there
is one model, saved as JSON in the data folder.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt, ValidationError

from ..cache.atomic import atomic_write
from ..schema import Op, Prediction

log = logging.getLogger(__name__)

THRESHOLD = 0.40  # prefetch the predicted action's inputs at or above this probability
MAX_DOCUMENTS = 1000  # documents whose last action is remembered (most recent first out)
MAX_FILE_BYTES = 1024 * 1024  # a saved model is a few hundred bytes; anything bigger is foreign

PRIOR_OBSERVATIONS = 20
# How likely each next action is after a source action, before any history. The weights
# overlap (dodge_burn's sum to 1.10) or leave room for "anything else" (beauty's sum to
# 0.20); `prior_counts` turns them into pseudo-counts.
PRIOR_WEIGHTS: dict[Op, dict[Op, float]] = {
    Op.dodge_burn: {Op.volume: 0.70, Op.beauty: 0.40},
    Op.volume: {Op.beauty: 0.62, Op.color: 0.40},
    Op.beauty: {Op.color: 0.20},
}

Counts = dict[Op, dict[Op, float]]


def prior_counts(
    weights: dict[Op, dict[Op, float]] = PRIOR_WEIGHTS,
) -> tuple[Counts, dict[Op, float]]:
    """Pseudo-counts and per-source totals for the prior weights.

    Each listed transition counts `20 × weight` observations. A source's total is
    `20 × max(1, sum of its weights)`: where the weights sum past 1 the total is their
    sum; where they sum below 1 the rest (`20 × (1 − sum)`) is mass on no particular
    action, which is never predicted, so a weak prior stays weak. A next action's
    probability is (prior + own count) / (prior total + own total from that source).

    Starting probabilities, before any history:

    - dodge_burn → volume 14/22 ≈ 0.636, beauty 8/22 ≈ 0.364 (predicts volume, prefetches)
    - volume → beauty 12.4/20.4 ≈ 0.608, color 8/20.4 ≈ 0.392 (predicts beauty, prefetches)
    - beauty → color 4/20 = 0.20 (predicts color, does not prefetch)
    - color, generate: nothing (no prior, no history)
    """
    counts: Counts = {}
    totals: dict[Op, float] = {}
    for source, targets in weights.items():
        counts[source] = {target: PRIOR_OBSERVATIONS * w for target, w in targets.items()}
        totals[source] = PRIOR_OBSERVATIONS * max(1.0, sum(targets.values()))
    return counts, totals


class _Saved(BaseModel):
    """The file's shape: only the user's own counts (priors are applied on top)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: Literal[1]
    transitions: dict[Op, dict[Op, NonNegativeInt]]


class ActionPredictor:
    """Learns action → next action on the same document; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._prior, self._prior_totals = prior_counts()
        self._own: dict[Op, dict[Op, int]] = self._load()
        self._last: OrderedDict[str, Op] = OrderedDict()
        self._dirty = False

    def record(self, document_id: str, action: Op) -> Prediction:
        """Note that `action` was applied on the document; predict what comes after it."""
        with self._lock:
            previous = self._last.pop(document_id, None)
            self._last[document_id] = action
            if len(self._last) > MAX_DOCUMENTS:
                self._last.popitem(last=False)
            if previous is not None:
                row = self._own.setdefault(previous, {})
                row[action] = row.get(action, 0) + 1
                self._dirty = True
                # Actions arrive at human pace (seconds apart): saving each change is
                # cheap and a crash loses nothing learned.
                self._save()
            return self._predict(action)

    def predict(self, after: Op) -> Prediction:
        with self._lock:
            return self._predict(after)

    @staticmethod
    def should_prefetch(prediction: Prediction) -> bool:
        return prediction.probability is not None and prediction.probability >= THRESHOLD

    def close(self) -> None:
        """Write anything not yet saved (a save that failed earlier is retried here)."""
        with self._lock:
            if self._dirty:
                self._save()

    def _predict(self, after: Op) -> Prediction:
        prior = self._prior.get(after, {})
        own = self._own.get(after, {})
        total = self._prior_totals.get(after, 0.0) + sum(own.values())
        candidates = {op: prior.get(op, 0.0) + own.get(op, 0) for op in prior.keys() | own.keys()}
        candidates = {op: count for op, count in candidates.items() if count > 0}
        if not candidates or total <= 0:
            return Prediction(next=None, probability=None)
        # most counts first; equal counts break by op name
        best = min(candidates, key=lambda op: (-candidates[op], op.value))
        return Prediction(next=best, probability=candidates[best] / total)

    def _load(self) -> dict[Op, dict[Op, int]]:
        try:
            with self.path.open("rb") as file:
                raw = file.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read %s (%s); starting from the priors", self.path, exc)
            return {}
        if len(raw) > MAX_FILE_BYTES:
            log.warning("%s is too large to be a saved model; ignoring it", self.path)
            return {}
        try:
            saved = _Saved.model_validate_json(raw)
        except ValidationError as exc:
            log.warning(
                "ignoring %s: not a saved action model (%d errors); it will be replaced",
                self.path,
                exc.error_count(),
            )
            return {}
        return {source: dict(row) for source, row in saved.transitions.items()}

    def _save(self) -> None:
        saved = _Saved(version=1, transitions=self._own)
        try:
            atomic_write(self.path, [saved.model_dump_json(indent=2).encode()])
        except OSError as exc:
            # learning goes on in memory; the next record or close() tries again
            log.warning("cannot save %s: %s", self.path, exc)
            return
        self._dirty = False
