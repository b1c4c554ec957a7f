"""The portrait test set: real photographs with hand-drawn region annotations, the
composites made from them (hair recoloured, subjects in front of skin-coloured wood,
walls and sand, a group of small faces, a tight close-up, a warm side light), and
photographs with no face at all.

Everything lives in tests/portraits/ (see its README for sources and licences). Regions
are boolean masks at the image's size: skin, hair, brows, eyes, lips, clothes, background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).parent / "portraits"
REGIONS = ("skin", "hair", "brows", "eyes", "lips", "clothes", "background")
NO_FACE = ("coffee", "rocket", "chelsea")  # a product shot, a landscape, a cat


@dataclass
class Portrait:
    name: str
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool (H, W)
    description: str = ""

    @property
    def has_face(self) -> bool:
        return bool(self.regions)


def load_image(name: str) -> np.ndarray:
    with Image.open(HERE / "images" / name) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def annotated(stem: str) -> Portrait:
    """A real photograph and its hand-drawn regions."""
    spec = json.loads((HERE / "annotations" / f"{stem}.json").read_text())
    pixels = load_image(spec["image"])
    height, width = pixels.shape[:2]
    if tuple(spec["size"]) != (width, height):
        raise ValueError(f"{stem}: annotation size {spec['size']} != image {(width, height)}")
    regions = {}
    for name in REGIONS:
        canvas = np.zeros((height, width), np.uint8)
        for polygon in spec["regions"][name]:
            cv2.fillPoly(canvas, [np.asarray(polygon, np.int32)], 1)
        regions[name] = canvas.astype(bool)
    return Portrait(stem, pixels, regions, spec.get("description", ""))


def no_face(stem: str) -> Portrait:
    return Portrait(stem, load_image(f"{stem}.jpg"), {}, "no face")


# ---- surfaces that share skin's colour ------------------------------------------------


def _lab_fill(shape: tuple[int, int], lightness: np.ndarray, a: float, b: float) -> np.ndarray:
    """RGB uint8 from an L* field (0..100) and a constant a*, b*."""
    lab = np.empty((*shape, 3), np.float32)
    lab[..., 0] = np.clip(lightness, 0, 100)
    lab[..., 1], lab[..., 2] = a, b
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _smooth_noise(shape: tuple[int, int], scale: float, seed: int) -> np.ndarray:
    """Zero-mean, unit-std noise with features about `scale` pixels across."""
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(scale, 0.5))
    return (noise - noise.mean()) / max(float(noise.std()), 1e-6)


def wood(shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    """Warm wood: smooth planks with fine, wavy grain."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    warp = 6.0 * _smooth_noise(shape, 20, seed)
    grain = np.sin((y + warp) * 0.9) * 0.5 + np.sin((y + 2 * warp) * 0.23) * 0.5
    lightness = 58 + 6 * grain + 3 * _smooth_noise(shape, 40, seed + 1)
    return _lab_fill(shape, lightness, 16, 30)


def warm_wall(shape: tuple[int, int], seed: int = 2) -> np.ndarray:
    """A plastered wall in a skin-like beige, lit unevenly."""
    lightness = 72 + 4 * _smooth_noise(shape, 60, seed) + 0.8 * _smooth_noise(shape, 1.5, seed)
    return _lab_fill(shape, lightness, 9, 22)


def sand(shape: tuple[int, int], seed: int = 3) -> np.ndarray:
    """Fine sand in sunlight: granular, pale and warm."""
    lightness = 76 + 3 * _smooth_noise(shape, 30, seed) + 2.5 * _smooth_noise(shape, 0.7, seed)
    return _lab_fill(shape, lightness, 6, 20)


# ---- composites ------------------------------------------------------------------------

HAIR_COLOURS = {  # (L* scale, L* offset, a*, b*): keeps the strands' own light and dark
    "blonde": (0.55, 42.0, 4.0, 30.0),
    "red": (0.6, 18.0, 32.0, 38.0),
    "grey": (0.55, 35.0, 0.0, 2.0),
}


def recolour_hair(portrait: Portrait, colour: str) -> np.ndarray:
    scale, offset, a, b = HAIR_COLOURS[colour]
    pixels = portrait.pixels.copy()
    hair = portrait.regions["hair"]
    lab = cv2.cvtColor(pixels.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lightness = lab[..., 0] * scale + offset
    moved = _lab_fill(pixels.shape[:2], lightness, a, b).astype(np.float32)
    # the strands' own chroma variation rides on the new colour
    moved += (pixels.astype(np.float32) - pixels[hair].mean(axis=0)) * 0.15
    pixels[hair] = np.clip(moved[hair], 0, 255).astype(np.uint8)
    return pixels


def replace_background(pixels: np.ndarray, background: np.ndarray, surface) -> np.ndarray:
    out = pixels.copy()
    out[background] = surface(background.shape)[background]
    return out


def _with(portrait: Portrait, name: str, pixels: np.ndarray, description: str) -> Portrait:
    return Portrait(name, pixels, dict(portrait.regions), description)


def _resized(portrait: Portrait, width: int, height: int) -> Portrait:
    enlarge = width > portrait.pixels.shape[1]
    method = cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA
    pixels = cv2.resize(portrait.pixels, (width, height), interpolation=method)
    regions = {
        name: cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        > 0
        for name, mask in portrait.regions.items()
    }
    return Portrait(portrait.name, pixels, regions, portrait.description)


def _cropped(portrait: Portrait, box: tuple[int, int, int, int]) -> Portrait:
    x0, y0, x1, y1 = box
    y1 = min(y1, portrait.pixels.shape[0])
    regions = {name: mask[y0:y1, x0:x1].copy() for name, mask in portrait.regions.items()}
    return Portrait(portrait.name, portrait.pixels[y0:y1, x0:x1].copy(), regions)


def group(members: list[Portrait], columns: int, tile: tuple[int, int]) -> Portrait:
    """Several subjects side by side in front of one warm wall: small faces."""
    width, height = tile
    rows = -(-len(members) // columns)
    pixels = np.zeros((rows * height, columns * width, 3), np.uint8)
    regions = {name: np.zeros(pixels.shape[:2], bool) for name in REGIONS}
    for index, member in enumerate(members):
        top = round(member.pixels.shape[1] * height / width)  # head and shoulders
        small = _resized(_cropped(member, (0, 0, member.pixels.shape[1], top)), width, height)
        y, x = (index // columns) * height, (index % columns) * width
        pixels[y : y + height, x : x + width] = small.pixels
        for name in REGIONS:
            regions[name][y : y + height, x : x + width] = small.regions[name]
    pixels = replace_background(pixels, regions["background"], warm_wall)
    return Portrait("group", pixels, regions, "six subjects, faces 40-70 px, on a warm wall")


def side_light(portrait: Portrait) -> np.ndarray:
    """A warm key light from the left falling off to a dim right side."""
    height, width = portrait.pixels.shape[:2]
    ramp = np.linspace(1.15, 0.55, width, dtype=np.float32)[None, :, None]
    warm = np.array([1.0, 0.9, 0.75], np.float32)
    lit = portrait.pixels.astype(np.float32) * ramp * warm
    return np.clip(lit, 0, 255).astype(np.uint8)


def portrait_set() -> list[Portrait]:
    """Every image of the set, faces first, then the ones with no face."""
    real = {stem: annotated(stem) for stem in REAL}
    astronaut, hopper, obama = real["astronaut"], real["hopper"], real["obama"]
    blonde = recolour_hair(astronaut, "blonde")
    composites = [
        _with(
            astronaut,
            "astronaut-blonde-wood",
            replace_background(blonde, astronaut.regions["background"], wood),
            "hair recoloured blonde, in front of wood",
        ),
        _with(
            astronaut,
            "astronaut-red-wall",
            replace_background(
                recolour_hair(astronaut, "red"), astronaut.regions["background"], warm_wall
            ),
            "hair recoloured red, in front of a warm wall",
        ),
        _with(
            obama,
            "obama-grey-sand",
            replace_background(recolour_hair(obama, "grey"), obama.regions["background"], sand),
            "hair recoloured grey, in front of sand",
        ),
        _with(hopper, "hopper-side-light", side_light(hopper), "warm side light, deep shadow"),
        group(
            [
                astronaut,
                hopper,
                obama,
                real["biden"],
                real["obama-speech"],
                _with(astronaut, "astronaut", blonde, ""),
            ],
            columns=3,
            tile=(240, 260),
        ),
    ]
    close = _cropped(hopper, (150, 120, 400, 370))
    close = _resized(close, 750, 750)
    close.name, close.description = "hopper-close-up", "a tight close-up: the face fills the frame"
    composites.append(close)
    return [*real.values(), *composites, *(no_face(stem) for stem in NO_FACE)]


REAL = ("astronaut", "hopper", "obama", "biden", "obama-hall", "obama-speech")
