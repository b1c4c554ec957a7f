"""Runs every retouch op on every image of the portrait set and measures it; as a script
(`scripts/quality`) it writes docs/quality/report.md and one contact sheet per image.

A contact sheet has two rows: the photograph and each op's result; then the hand-drawn
regions and, for each op, the pixels that changed by more than 2 levels (red where that
is inside a region that must stay untouched, white elsewhere).
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from portrait_metrics import (  # noqa: E402
    KEEP_OUT,
    MAX_CHANGED,
    changed,
    failures,
    region_changes,
    skin_metrics,
)
from portrait_set import Portrait, portrait_set  # noqa: E402
from retouch_support import full_res, new_engine, run_op  # noqa: E402

from sidecar.engines.retouch.sculpt import light_and_shade  # noqa: E402
from sidecar.stages.skin import face_regions_mask  # noqa: E402

OPS = ("beauty", "dodge_burn", "color", "volume")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "quality"
TILE = 200  # contact sheet tile height in pixels
CORE_MARGIN = 0.05  # of face width: skin metrics keep this far from edges and features
REGION_COLOURS = {
    "skin": (240, 170, 140),
    "hair": (120, 80, 30),
    "brows": (60, 40, 10),
    "eyes": (40, 140, 255),
    "lips": (220, 40, 90),
    "clothes": (60, 170, 80),
    "background": (90, 90, 90),
}


@dataclass
class Evaluation:
    portrait: Portrait
    faces: int
    face_width: float
    seconds: dict[str, float] = field(default_factory=dict)  # per op, analysis included once
    results: dict[str, np.ndarray] = field(default_factory=dict)
    moved: dict[str, np.ndarray] = field(default_factory=dict)
    regions: dict[str, dict[str, float]] = field(default_factory=dict)  # op -> region -> frac
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    face_skin: np.ndarray | None = None  # where the skin metrics are measured

    def problems(self) -> list[str]:
        """Every criterion this image misses, for every op."""
        found = []
        for op in OPS:
            if not self.portrait.has_face:
                if self.moved[op].any():
                    found.append(f"{op}: {int(self.moved[op].sum())} pixels changed, no face")
                continue
            for region in KEEP_OUT:
                share = self.regions[op][region]
                if share > MAX_CHANGED:
                    found.append(f"{op}: {share:.1%} of {region} changed")
            found += failures(op, self.metrics[op])
        return [f"{self.portrait.name}: {line}" for line in found]


def evaluate(portrait: Portrait, engine=None) -> Evaluation:
    engine = engine or new_engine()
    pixels = portrait.pixels
    image_id = hashlib.sha256(portrait.name.encode()).hexdigest()
    started = time.perf_counter()
    analysis = engine.analyse(image_id, pixels)
    analysed = time.perf_counter() - started
    widths = [face.width / analysis.scale for face in analysis.faces]
    evaluation = Evaluation(portrait, len(widths), float(np.median(widths)) if widths else 0.0)
    lit = shaded = None
    if analysis.faces:
        size = (analysis.width, analysis.height)
        highlight, shadow = light_and_shade(analysis.mask.shape, analysis.faces)
        # the face's own skin: the hand-drawn skin inside the face mesh's outline, away
        # from its edges and the features (cheeks, forehead, chin: where blotches are;
        # necks and hands only need to come to no harm, which the region counts show)
        oval = face_regions_mask(analysis.mask.shape, list(analysis.faces), ["face_oval"])
        skin = portrait.regions["skin"] & (full_res(oval, *size) > 0.5)
        radius = max(1, round(evaluation.face_width * CORE_MARGIN))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        skin = cv2.erode(skin.astype(np.uint8), disk) > 0
        evaluation.face_skin = skin
        lit = (full_res(highlight, *size) > 0.5) & skin
        shaded = (full_res(shadow, *size) > 0.5) & skin
    for op in OPS:
        started = time.perf_counter()
        result = run_op(engine, pixels, op, image_id=image_id)
        evaluation.seconds[op] = time.perf_counter() - started + analysed
        moved = changed(pixels, result)
        evaluation.results[op], evaluation.moved[op] = result, moved
        if portrait.has_face:
            evaluation.regions[op] = region_changes(portrait.regions, moved)
            evaluation.metrics[op] = skin_metrics(
                pixels, result, evaluation.face_skin, evaluation.face_width, lit, shaded
            )
    return evaluation


# ---- the report ------------------------------------------------------------------------


def _tile(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (max(1, round(width * TILE / height)), TILE)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _regions_picture(portrait: Portrait) -> np.ndarray:
    picture = (portrait.pixels * 0.35).astype(np.uint8)
    for name, mask in portrait.regions.items():
        colour = np.array(REGION_COLOURS[name], np.float32)
        picture[mask] = (picture[mask] * 0.3 + colour * 0.7).astype(np.uint8)
    return picture


def _moved_picture(evaluation: Evaluation, op: str) -> np.ndarray:
    picture = (evaluation.portrait.pixels.mean(axis=2, keepdims=True) * 0.25).astype(np.uint8)
    picture = np.repeat(picture, 3, axis=2)
    moved = evaluation.moved[op]
    picture[moved] = 255
    forbidden = np.zeros(moved.shape, bool)
    for name in KEEP_OUT:
        forbidden |= evaluation.portrait.regions.get(name, np.zeros(moved.shape, bool))
    picture[moved & forbidden] = (255, 0, 0)
    return picture


def contact_sheet(evaluation: Evaluation) -> Image.Image:
    portrait = evaluation.portrait
    top = [portrait.pixels] + [evaluation.results[op] for op in OPS]
    bottom = [_regions_picture(portrait)] + [_moved_picture(evaluation, op) for op in OPS]
    rows = [np.hstack([_tile(image) for image in row]) for row in (top, bottom)]
    sheet = Image.fromarray(np.vstack(rows))
    return sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def report(evaluations: list[Evaluation]) -> str:
    lines = [
        "# Retouch quality on the portrait set",
        "",
        "Written by `scripts/quality` (the same measurements `scripts/test` asserts, in",
        "`tests/test_portrait_quality.py`). The set, its sources and licences and the",
        "hand-drawn regions: `tests/portraits/README.md`. What each metric means and each",
        "op's criteria: `docs/quality.md`.",
        "",
        "## Untouched regions",
        "",
        f"Share of each hand-drawn region whose pixels changed by more than 2 levels (limit "
        f"{MAX_CHANGED:.0%}), the worst of the four ops; and the share of skin each op changed.",
        "",
        "| image | faces | hair | brows | eyes | lips | clothes | background | skin changed "
        "(beauty / d&b / color / volume) | time, s (median op) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ev in evaluations:
        seconds = float(np.median(list(ev.seconds.values())))
        if not ev.portrait.has_face:
            moved = max(float(ev.moved[op].mean()) for op in OPS)
            lines.append(
                f"| {ev.portrait.name} | {ev.faces} | — | — | — | — | — | {moved:.2%} (whole) "
                f"| — | {seconds:.2f} |"
            )
            continue
        worst = {r: max(ev.regions[op][r] for op in OPS) for r in KEEP_OUT}
        skin = " / ".join(f"{ev.regions[op]['skin']:.0%}" for op in OPS)
        cells = " | ".join(f"{worst[r]:.2%}" for r in KEEP_OUT)
        lines.append(f"| {ev.portrait.name} | {ev.faces} | {cells} | {skin} | {seconds:.2f} |")
    lines += [
        "",
        "## Skin",
        "",
        "Ratios are after / before on the hand-drawn skin.",
        "",
        "| image | beauty blotch | beauty pores | d&b uneven | d&b a* spread | d&b b* spread "
        "| color a* spread | color b* spread | color hue shift ° | volume contrast +L* "
        "| volume step L*/px |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ev in evaluations:
        if not ev.portrait.has_face:
            continue
        m = ev.metrics
        cells = [
            m["beauty"]["blotch_ratio"],
            m["beauty"]["pore_ratio"],
            m["dodge_burn"]["uneven_ratio"],
            m["dodge_burn"]["a_spread_ratio"],
            m["dodge_burn"]["b_spread_ratio"],
            m["color"]["a_spread_ratio"],
            m["color"]["b_spread_ratio"],
            m["color"]["hue_shift"],
            m["volume"].get("contrast_gain"),
            m["volume"]["step"],
        ]
        lines.append(f"| {ev.portrait.name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    problems = [line for ev in evaluations for line in ev.problems()]
    lines += ["", "## Criteria missed", ""]
    lines += [f"- {line}" for line in problems] or ["None: every image meets every criterion."]
    lines += ["", "## Contact sheets", ""]
    lines += [
        "Top: the photograph, then beauty, dodge & burn, color, volume. Bottom: the "
        "hand-drawn regions, then each op's changed pixels (white: changed, red: changed "
        "inside a region that must stay untouched).",
        "",
    ]
    for ev in evaluations:
        lines += [
            f"### {ev.portrait.name}",
            "",
            f"![{ev.portrait.name}]({ev.portrait.name}.png)",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    engine = new_engine()
    evaluations = []
    for portrait in portrait_set():
        evaluation = evaluate(portrait, engine)
        contact_sheet(evaluation).save(OUT / f"{portrait.name}.png", optimize=True)
        evaluations.append(evaluation)
        print(f"{portrait.name}: {len(evaluation.problems())} criteria missed", file=sys.stderr)
    (OUT / "report.md").write_text(report(evaluations) + "\n")
    engine.close()
    print(f"wrote {OUT / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
