"""What is done to every file (`--op`, `--intensity`, `--param`), from the arguments."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..client.errors import parse_request
from ..schema import RETOUCH_OPS, JobRequest


class UsageError(Exception):
    """Bad arguments: one line on stderr and exit code 2."""


@dataclass(frozen=True)
class Recipe:
    """What is done to every file."""

    op: str
    intensity: float = 1.0
    params: dict = field(default_factory=dict)

    def job(
        self,
        image_id: str,
        document_id: str,
        hero: bool,
        prior: dict | None = None,
        output: dict | None = None,
    ) -> JobRequest:
        """The job of one file (with `output`, {path, source}: the sidecar writes the
        output file itself); a request the sidecar would refuse (a NaN param, say)
        raises its `invalid_request` SidecarError, in its words."""
        fields = {
            "op": self.op,
            "image_id": image_id,
            "intensity": self.intensity,
            "params": {**(prior or {}), **self.params},
            "priority": "hero" if hero else "normal",
            "document_id": document_id[:200],
            # no draft/preview levels: nobody looks at them, and the result is the same
            "preview": {"progressive": False},
        }
        if output is not None:
            fields["output"] = output
        return parse_request(JobRequest, fields)


def parse_value(text: str) -> float | int | bool | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(items: Iterable[str]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise UsageError(f"bad --param {item!r}: expected KEY=VALUE")
        params[key.strip()] = parse_value(value.strip())
    return params


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    if args.op not in RETOUCH_OPS:
        expected = ", ".join(sorted(RETOUCH_OPS))
        raise UsageError(f"unknown op {args.op!r}: expected one of {expected}")
    if not 0.0 <= args.intensity <= 1.0:
        raise UsageError(f"--intensity {args.intensity} is outside 0..1")
    return Recipe(args.op, args.intensity, parse_params(args.param))
