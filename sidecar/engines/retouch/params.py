"""The params a retouch op takes (validated when the job is submitted)."""

from __future__ import annotations

from pydantic import Field

from ...schema import Op
from ...schema.common import Model

DEFAULT_STRENGTH = {Op.beauty: 0.9, Op.dodge_burn: 0.75, Op.volume: 1.0, Op.color: 0.8}


class RetouchParams(Model):
    strength: float | None = Field(
        None, ge=0.0, le=1.0, description="How far the op goes at intensity 1 (op's default)."
    )
    prior_a: float | None = Field(
        None, ge=-128, le=127, description="color: a session's skin a* (weak prior, weight 0.1)."
    )
    prior_b: float | None = Field(
        None, ge=-128, le=127, description="color: a session's skin b* (weak prior, weight 0.1)."
    )

    def strength_for(self, op: Op) -> float:
        return DEFAULT_STRENGTH[op] if self.strength is None else self.strength
