"""Synthetic images that hold no single digit, for training and measuring "not a digit".

Each is drawn on a canvas as a person would draw or upload it (dots, straight lines,
scribbles, part of a digit, several digits side by side, a letter or symbol) and then goes
through the serving image pipeline, so the model learns from exactly what it is shown.
A set is decided by its seed; training and the figures use different seeds, fonts and
MNIST digits, so the figures come from negatives the model never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from flaskandmnist.imaging import BlankImageError, to_mnist_image

CANVAS = 112
#: Ink stays this far from the canvas edge, so the pipeline sees a drawn image.
MARGIN = 12
KINDS = ("dots", "lines", "scribbles", "partial", "several", "letters")
#: Letters and symbols that look like no digit (no O, I, l, S, Z, B, b, g, q, ...).
GLYPHS = "ACEFHKMNPRUVWXYacefhkmnprtuvwxy#%&@*+=<>?!~"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
#: The held-out negatives of the figures: per kind, drawn with this seed, the held-out fonts
#: and MNIST's test digits.
HELD_OUT_COUNT = 1000
HELD_OUT_SEED = 20261206

Drawer = Callable[[np.random.Generator, np.ndarray], Image.Image]


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (CANVAS, CANVAS), 0)
    return image, ImageDraw.Draw(image)


def _point(rng: np.random.Generator) -> tuple[float, float]:
    return tuple(rng.uniform(MARGIN, CANVAS - MARGIN, 2))  # type: ignore[return-value]


def _width(rng: np.random.Generator) -> int:
    """A pen of 2-12 % of the canvas side, as people's pens and brushes vary."""
    return int(rng.integers(2, 14))


def dots(rng: np.random.Generator, _digits: np.ndarray) -> Image.Image:
    image, draw = _canvas()
    for _ in range(rng.choice([1, 1, 1, 2, 3, 4])):
        (x, y), r = _point(rng), rng.uniform(2, 12)
        draw.ellipse((x - r, y - r * rng.uniform(0.7, 1.3), x + r, y + r), fill=255)
    return image


def lines(rng: np.random.Generator, _digits: np.ndarray) -> Image.Image:
    """Straight lines well away from upright (an upright stroke is a 1)."""
    image, draw = _canvas()
    for _ in range(rng.choice([1, 1, 1, 2])):
        angle = math.radians(rng.uniform(-40, 40))
        length = rng.uniform(20, CANVAS - 2 * MARGIN)
        (x, y) = (CANVAS / 2 + rng.uniform(-15, 15), CANVAS / 2 + rng.uniform(-15, 15))
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        draw.line(_inside([(x - dx, y - dy), (x + dx, y + dy)]), fill=255, width=_width(rng))
    return image


def scribbles(rng: np.random.Generator, _digits: np.ndarray) -> Image.Image:
    """A pen wandering with momentum: loops, zigzags and tangles."""
    image, draw = _canvas()
    steps = int(rng.integers(50, 150))
    turn = rng.uniform(0.4, 1.5)
    heading = rng.uniform(0, 2 * math.pi)
    points = [(CANVAS / 2, CANVAS / 2)]
    for _ in range(steps):
        heading += rng.normal(0, turn)
        x, y = points[-1]
        points.append(_inside([(x + 4 * math.cos(heading), y + 4 * math.sin(heading))])[0])
    draw.line(points, fill=255, width=_width(rng), joint="curve")
    return image


def partial(rng: np.random.Generator, digits: np.ndarray) -> Image.Image:
    """A digit cut by a random half-plane, less than a third of its ink left."""
    digit = digits[rng.integers(len(digits))].astype(np.float32) / 255
    angle = rng.uniform(0, 2 * math.pi)
    rows, cols = np.mgrid[:28, :28]
    along = (cols - 14) * math.cos(angle) + (rows - 14) * math.sin(angle)
    share = rng.uniform(0.12, 0.3)
    ink = digit.sum()
    for cut in np.linspace(-14, 14, 57):
        if digit[along > cut].sum() <= share * ink:
            break
    return _enlarge(np.where(along > cut, digit, 0.0))


def several(rng: np.random.Generator, digits: np.ndarray) -> Image.Image:
    """Two or three digits side by side."""
    count = int(rng.choice([2, 2, 3]))
    picked = digits[rng.integers(len(digits), size=count)].astype(np.float32) / 255
    gap = int(rng.integers(-2, 6))
    row = np.zeros((28, count * 28 + (count - 1) * gap), np.float32)
    for i, digit in enumerate(picked):
        left = i * (28 + gap)
        row[:, left : left + 28] = np.maximum(row[:, left : left + 28], digit)
    return _enlarge(row)


def letters(rng: np.random.Generator, _digits: np.ndarray, fonts: tuple[Path, ...]) -> Image.Image:
    image, draw = _canvas()
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(50, 80)))
    glyph = GLYPHS[rng.integers(len(GLYPHS))]
    draw.text((CANVAS / 2, CANVAS / 2), glyph, fill=255, font=font, anchor="mm")
    return image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR)


def _inside(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    low, high = MARGIN, CANVAS - MARGIN
    return [(min(max(x, low), high), min(max(y, low), high)) for x, y in points]


def _enlarge(ink: np.ndarray) -> Image.Image:
    """An ink map in [0, 1] drawn at canvas size, with the canvas's margin."""
    scale = (CANVAS - 2 * MARGIN) / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    grey = Image.fromarray(np.rint(ink * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    image, _ = _canvas()
    image.paste(grey, ((CANVAS - size[0]) // 2, (CANVAS - size[1]) // 2))
    return image


def fonts(held_out: bool) -> tuple[Path, ...]:
    """The DejaVu fonts of one side: serif faces are kept for the figures, the others train."""
    found = sorted(FONT_DIR.glob("DejaVu*.ttf"))
    return tuple(path for path in found if ("Serif" in path.name) == held_out)


def make(
    kind: str, count: int, seed: int, digits: np.ndarray, held_out: bool = False
) -> np.ndarray:
    """``count`` negatives of one kind as the model sees them, (count, 28, 28) float32.

    ``digits`` are uint8 MNIST images (for "partial" and "several"); ``held_out`` picks the
    fonts kept from training. Drawings the pipeline refuses as blank (a tiny dot) are drawn
    again: those never reach the model.
    """
    font_files = fonts(held_out)
    drawers: dict[str, Drawer] = {
        "dots": dots,
        "lines": lines,
        "scribbles": scribbles,
        "partial": partial,
        "several": several,
        "letters": lambda rng, d: letters(rng, d, font_files),
    }
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    out = np.empty((count, 28, 28), np.float32)
    made = 0
    while made < count:
        try:
            out[made] = to_mnist_image(drawers[kind](rng, digits))
        except BlankImageError:
            continue
        made += 1
    return out


def held_out(kind: str, test_digits: np.ndarray, count: int = HELD_OUT_COUNT) -> np.ndarray:
    """The negatives of one kind that no training saw, for the figures."""
    return make(kind, count, HELD_OUT_SEED, test_digits, held_out=True)


def make_all(
    counts: dict[str, int], seed: int, digits: np.ndarray, held_out: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Negatives of every kind in ``counts``, and each one's kind index into KINDS."""
    images = [make(kind, n, seed, digits, held_out) for kind, n in counts.items()]
    kinds = [np.full(n, KINDS.index(kind)) for kind, n in counts.items()]
    return np.concatenate(images), np.concatenate(kinds)
