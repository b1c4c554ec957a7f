"""The shoot's skin tone for `color`: a weak prior from the first images, for the rest."""

from __future__ import annotations

from ..client import SidecarApi, SidecarError
from .recipe import Recipe


class SessionPrior:
    """For `color`, the shoot's skin tone: the mean of the first five images' own
    median skin a*, b*, passed to the rest as `prior_a`/`prior_b`, which the engine
    uses only as a weak (0.1) pull, so one badly lit frame cannot tint the shoot."""

    FIRST = 5

    def __init__(self, recipe: Recipe) -> None:
        explicit = "prior_a" in recipe.params or "prior_b" in recipe.params
        self.active = recipe.op == "color" and not explicit
        self.seen = 0
        self.tones: list[tuple[float, float]] = []

    def params(self) -> dict:
        if not self.active or self.seen < self.FIRST or not self.tones:
            return {}
        a = sum(t[0] for t in self.tones) / len(self.tones)
        b = sum(t[1] for t in self.tones) / len(self.tones)
        return {"prior_a": round(a, 3), "prior_b": round(b, 3)}

    def add(self, tone: tuple[float, float] | None) -> None:
        """One of the first images measured: its tone, or None when it has no skin."""
        self.seen += 1
        if tone is not None:
            self.tones.append(tone)

    def stop(self) -> None:
        """The tone cannot be measured: no prior for the rest of the shoot."""
        self.active = False

    async def learn(self, client: SidecarApi, image_id: str) -> None:
        """Measure the image's tone if it is one of the first."""
        if not self.active or self.seen >= self.FIRST:
            return
        try:
            tone = await client.skin_tone(image_id)
        except SidecarError:  # a sidecar that cannot measure it: no prior, no failure
            self.seen += 1
            self.stop()
            return
        self.add((tone.a, tone.b) if tone.a is not None and tone.b is not None else None)
