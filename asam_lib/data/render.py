"""The procedural renderer of the embedded world.

An entity is drawn as a coloured, patterned shape on a grey background. Every image of an entity is
fixed by an :class:`ImageParams` (position, scale, rotation, hue and brightness jitter, background,
noise), so the "image transform strength" between two images of one entity is a distance between
their parameters (:func:`param_distance`), which knowledge units use as the image distance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = {
    "red": (215, 35, 35),
    "green": (35, 160, 55),
    "blue": (40, 75, 215),
    "yellow": (235, 205, 30),
    "purple": (135, 45, 175),
    "orange": (240, 125, 20),
    "cyan": (30, 195, 205),
    "pink": (240, 115, 175),
}
PATTERNS = ("plain", "striped", "dotted", "checkered")

SUPERSAMPLE = 4


@dataclass(frozen=True)
class ImageParams:
    """Everything that varies between two images of the same entity."""

    dx: float = 0.0  # horizontal offset of the centre, in fractions of the free margin [-1, 1]
    dy: float = 0.0  # vertical offset, same units
    scale: float = 0.72  # object size as a fraction of the image side
    rotation: float = 0.0  # degrees
    hue: float = 0.0  # hue shift (fraction of the colour circle)
    brightness: float = 1.0  # multiplicative brightness
    background: float = 0.5  # grey level of the background in [0, 1]
    noise: float = 0.02  # std of additive Gaussian pixel noise, in [0, 1] units

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in asdict(self).items()}


# Centre and half-width of each parameter's range at transform strength 1.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "dx": (0.0, 1.0),
    "dy": (0.0, 1.0),
    "scale": (0.72, 0.16),
    "rotation": (0.0, 18.0),
    "hue": (0.0, 0.025),
    "brightness": (1.0, 0.15),
    "background": (0.5, 0.3),
    "noise": (0.03, 0.03),
}


# Values a parameter can take at all (beyond strength 1 a draw is clipped to them): the object stays on the
# canvas, the background is a grey level, the noise is a standard deviation. At strength 1 no draw reaches them.
VALID_RANGES: dict[str, tuple[float, float]] = {
    "dx": (-1.0, 1.0),
    "dy": (-1.0, 1.0),
    "scale": (0.3, 1.0),
    "background": (0.0, 1.0),
    "noise": (0.0, 1.0),
}


def sample_params(rng: np.random.Generator, strength: float = 1.0) -> ImageParams:
    """Draw image parameters uniformly within ``strength`` times each parameter's half-range, clipped to
    :data:`VALID_RANGES` (strength 2 is the hard evaluation tier's shift, see :mod:`asam_lib.data.units`)."""
    values = {}
    for name, (centre, half) in PARAM_RANGES.items():
        low, high = VALID_RANGES.get(name, (-np.inf, np.inf))
        values[name] = float(np.clip(centre + strength * half * rng.uniform(-1.0, 1.0), low, high))
    return ImageParams(**values)


def param_distance(a: ImageParams, b: ImageParams) -> float:
    """Image transform distance: RMS over parameters of the difference in units of the full range."""
    total = 0.0
    for f in fields(ImageParams):
        _, half = PARAM_RANGES[f.name]
        total += ((getattr(a, f.name) - getattr(b, f.name)) / (2 * half)) ** 2
    return math.sqrt(total / len(PARAM_RANGES))


def _shape_polygon(shape: str, radius: float, centre: float) -> list[tuple[float, float]]:
    def ring(n: int, r: float, phase: float) -> list[tuple[float, float]]:
        return [
            (centre + r * math.cos(phase + 2 * math.pi * i / n), centre + r * math.sin(phase + 2 * math.pi * i / n))
            for i in range(n)
        ]

    if shape == "square":
        return ring(4, radius * 1.05, math.pi / 4)
    if shape == "diamond":
        return [
            (centre, centre - radius),
            (centre + radius * 0.7, centre),
            (centre, centre + radius),
            (centre - radius * 0.7, centre),
        ]
    if shape == "triangle":
        return ring(3, radius * 1.1, -math.pi / 2)
    if shape == "star":
        outer, inner = ring(5, radius * 1.1, -math.pi / 2), ring(5, radius * 0.45, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a, b = radius * 0.95, radius * 0.33
        pts = [
            (-b, -a),
            (b, -a),
            (b, -b),
            (a, -b),
            (a, b),
            (b, b),
            (b, a),
            (-b, a),
            (-b, b),
            (-a, b),
            (-a, -b),
            (-b, -b),
        ]
        return [(centre + x, centre + y) for x, y in pts]
    raise ValueError(f"unknown shape {shape!r}; known shapes: {', '.join(SHAPES)}")


def _pattern_mask(pattern: str, size: int) -> np.ndarray:
    """Boolean mask of the overlay pixels of a pattern on a ``size`` x ``size`` canvas."""
    y, x = np.mgrid[0:size, 0:size]
    period = max(size // 5, 4)
    if pattern == "plain":
        return np.zeros((size, size), dtype=bool)
    if pattern == "striped":
        return ((x + y) // (period // 2)) % 2 == 0
    if pattern == "checkered":
        return ((x // period) + (y // period)) % 2 == 0
    if pattern == "dotted":
        cx = (x % period) - period / 2
        cy = (y % period) - period / 2
        return cx**2 + cy**2 <= (period * 0.28) ** 2
    raise ValueError(f"unknown pattern {pattern!r}; known patterns: {', '.join(PATTERNS)}")


@lru_cache(maxsize=512)
def render_object(shape: str, colour: str, pattern: str, size: int) -> Image.Image:
    """The entity's object alone, upright and centred, on a transparent ``size`` x ``size`` canvas. Kept for the
    next image of the same object at the same size (the same image object comes back: treat it as read-only)."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known colours: {', '.join(COLOURS)}")
    mask_img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask_img)
    centre, radius = size / 2, size * 0.45
    if shape == "circle":
        draw.ellipse([centre - radius, centre - radius, centre + radius, centre + radius], fill=255)
    else:
        draw.polygon(_shape_polygon(shape, radius, centre), fill=255)
    base = np.array(COLOURS[colour], dtype=np.float32)
    rgb = np.broadcast_to(base, (size, size, 3)).copy()
    overlay = _pattern_mask(pattern, size)
    rgb[overlay] = base * 0.3 + 255 * 0.08
    rgba = np.dstack([rgb, np.array(mask_img, dtype=np.float32)]).round().astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def _shift_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    hsv = np.array(Image.fromarray(rgb, "RGB").convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 255))) % 256
    return np.array(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))


def render_image(
    shape: str,
    colour: str,
    pattern: str,
    params: ImageParams,
    image_size: int,
    noise_rng: np.random.Generator,
) -> Image.Image:
    """Render one RGB image of an entity under ``params``; the pixel noise comes from ``noise_rng``."""
    big = image_size * SUPERSAMPLE
    grey = int(round(255 * params.background))
    canvas = Image.new("RGB", (big, big), (grey, grey, grey))
    obj_px = max(int(round(big * params.scale)), 8)
    obj = render_object(shape, colour, pattern, obj_px * 2)
    obj = obj.rotate(params.rotation, resample=Image.BICUBIC).resize((obj_px, obj_px), Image.LANCZOS)
    margin = (big - obj_px) / 2
    left = int(round(margin + params.dx * margin))
    top = int(round(margin + params.dy * margin))
    canvas.paste(obj, (left, top), obj)
    small = np.array(canvas.resize((image_size, image_size), Image.BOX))
    if params.hue:
        small = _shift_hue(small, params.hue)
    pixels = small.astype(np.float32) / 255.0 * params.brightness
    pixels = pixels + noise_rng.normal(0.0, params.noise, size=pixels.shape)
    return Image.fromarray((np.clip(pixels, 0.0, 1.0) * 255).round().astype(np.uint8), "RGB")
