"""A robustness suite made from the MNIST test set: each digit changed the way real
handwriting and real uploads differ from MNIST, then sent through the serving pipeline.

Slices: redrawn with a round pen (the skeleton, then a brush of 1-12 % of the side, as a
mouse or finger draws), downsampled to 8-16 px and back, blurred, noisy, JPEG-compressed,
thinned, made bold, slanted, and small in a large, unevenly lit photo. Only test digits are
used, never the training set. Needs scikit-image (requirements-train.txt) for the skeleton.

Training applies some of the same changes to training digits (:func:`redraw`): the ways
real drawings differ from MNIST that augmenting 28x28 digits cannot make.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .classifier import Classifier, answers
from .evaluation import calibration_error
from .imaging import ImageError, to_mnist_array

#: Side of the drawing a test digit is enlarged to, and of the canvas it sits on.
SIDE = 84
CANVAS = 120

Slice = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _enlarge(digit: np.ndarray) -> np.ndarray:
    """A 28x28 uint8 MNIST digit as an ink map in [0, 1], SIDE x SIDE."""
    image = Image.fromarray(digit).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, np.float32) / 255, 0.0, 1.0)


def _on_paper(ink: np.ndarray) -> np.ndarray:
    """Dark ink on white paper, centred on a CANVAS x CANVAS page, uint8."""
    page = np.zeros((CANVAS, CANVAS), np.float32)
    top = (CANVAS - ink.shape[0]) // 2
    left = (CANVAS - ink.shape[1]) // 2
    page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return np.rint((1.0 - np.clip(page, 0.0, 1.0)) * 255).astype(np.uint8)


def _brush(mask: np.ndarray, radius: float) -> np.ndarray:
    """Paint ``mask`` with a round brush of ``radius`` pixels, anti-aliased."""
    distance = ndi.distance_transform_edt(~mask)
    return np.clip(radius + 0.5 - distance, 0.0, 1.0)


def pen(low: float, high: float) -> Slice:
    """Redrawn along the digit's skeleton with a round pen of ``low``-``high`` of the side."""
    from skimage.morphology import skeletonize

    def redraw(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        skeleton = skeletonize(ink > 0.5)
        width = rng.uniform(low, high) * SIDE
        return _on_paper(_brush(skeleton, width / 2))

    return redraw


def downsampled(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    small = int(rng.integers(8, 17))
    image = Image.fromarray(_on_paper(ink))
    tiny = image.resize((small * CANVAS // SIDE,) * 2, Image.Resampling.BOX)
    return np.asarray(tiny.resize((CANVAS, CANVAS), Image.Resampling.BILINEAR))


def blurred(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _on_paper(ndi.gaussian_filter(ink, rng.uniform(1.5, 3.0)))


def noisy(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    page = _on_paper(ink).astype(np.float32)
    page += rng.normal(0.0, rng.uniform(15, 40), page.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def jpeg(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = io.BytesIO()
    Image.fromarray(_on_paper(ink)).save(out, "JPEG", quality=int(rng.integers(10, 31)))
    return np.asarray(Image.open(out).convert("L"))


def thin(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mask = ink > 0.5
    eroded = ndi.binary_erosion(mask, iterations=int(rng.integers(2, 5)))
    # A stroke never vanishes: its skeleton stays.
    from skimage.morphology import skeletonize

    return _on_paper(_brush(eroded | skeletonize(mask), 0.5))


def bold(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _on_paper(_brush(ink > 0.5, rng.uniform(2.0, 5.0)))


def slanted(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shear = rng.choice([-1, 1]) * rng.uniform(0.2, 0.45)
    padded = np.pad(ink, SIDE // 8)
    centre = padded.shape[0] / 2
    matrix = np.array([[1.0, 0.0], [shear, 1.0]])  # (row, col) -> input; column shifts by row
    offset = np.array([0.0, -shear * centre])
    return _on_paper(ndi.affine_transform(padded, matrix, offset, order=1))


def in_photo(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small (40-70 px) on a 480x360 sheet lit unevenly, with sensor noise."""
    height, width = 360, 480
    side = int(rng.integers(40, 71))
    digit = np.asarray(
        Image.fromarray(np.rint(ink * 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.BILINEAR
        ),
        np.float32,
    )
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (cols / width - 0.5) * math.cos(angle) + (rows / height - 0.5) * math.sin(angle)
    paper = rng.uniform(150, 220) + rng.uniform(20, 50) * ramp
    top = int(rng.integers(height // 4, 3 * height // 4 - side))
    left = int(rng.integers(width // 4, 3 * width // 4 - side))
    page = paper.copy()
    region = page[top : top + side, left : left + side]
    # Ink absorbs most of the light falling on it.
    page[top : top + side, left : left + side] = region * (1 - 0.8 * digit / 255)
    page += rng.normal(0.0, 4.0, page.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def slices() -> dict[str, Slice]:
    return {
        "pen 1-4%": pen(0.01, 0.04),
        "pen 4-8%": pen(0.04, 0.08),
        "pen 8-12%": pen(0.08, 0.12),
        "downsampled 8-16 px": downsampled,
        "blurred": blurred,
        "noisy": noisy,
        "jpeg q10-30": jpeg,
        "thin": thin,
        "bold": bold,
        "slanted": slanted,
        "small in a photo": in_photo,
    }


def _through_pipeline(
    change: Slice, digit: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """``digit`` changed by ``change`` and sent through the serving pipeline; None when the
    pipeline refuses it as blank."""
    try:
        return to_mnist_array(change(_enlarge(digit), rng))
    except ImageError:
        return None


def redraw(
    digits: np.ndarray, labels: np.ndarray, changes: Sequence[str], count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of ``digits`` (a seeded choice), each changed by one of the slices named in
    ``changes`` and sent through the pipeline, with their labels; digits the pipeline
    refuses as blank are left out."""
    rng = np.random.default_rng(seed)
    made = slices()
    inputs, kept = [], []
    for which in rng.choice(len(digits), size=count, replace=False):
        redrawn = _through_pipeline(made[changes[rng.integers(len(changes))]], digits[which], rng)
        if redrawn is not None:
            inputs.append(redrawn)
            kept.append(labels[which])
    empty = np.empty((0, 28, 28), np.float32)
    return (np.stack(inputs) if inputs else empty), np.asarray(kept, np.int32)


@dataclass(frozen=True)
class SliceResult:
    name: str
    images: int
    accuracy: float  # refused images ("not a digit", blank) count as wrong
    refused: float
    calibration_error: float


def run(
    classifier: Classifier,
    digits: np.ndarray,
    labels: np.ndarray,
    per_slice: int | None = None,
    seed: int = 13,
) -> list[SliceResult]:
    """Each slice on ``per_slice`` test digits (a seeded sample; all if None)."""
    results = []
    for index, (name, change) in enumerate(slices().items()):
        rng = np.random.default_rng([seed, index])
        chosen = np.arange(len(digits))
        if per_slice is not None:
            chosen = rng.choice(len(digits), size=per_slice, replace=False)
        inputs, refused_blank = [], np.zeros(len(chosen), bool)
        for i, which in enumerate(chosen):
            changed = _through_pipeline(change, digits[which], rng)
            refused_blank[i] = changed is None
            inputs.append(np.zeros((28, 28), np.float32) if changed is None else changed)
        probabilities = classifier.probabilities(np.stack(inputs))
        truth = labels[chosen]
        answered = np.where(refused_blank, -1, answers(probabilities))
        results.append(
            SliceResult(
                name=name,
                images=len(chosen),
                accuracy=float(np.mean(answered == truth)),
                refused=float(np.mean((answered == -1) | (answered >= 10))),
                calibration_error=calibration_error(
                    probabilities[~refused_blank], truth[~refused_blank]
                ),
            )
        )
    return results


def card_figures(results: list[SliceResult]) -> dict[str, Any]:
    """The suite's figures as the model card records them: each slice's accuracy, refusals
    and calibration error, and how many test digits each was measured on."""
    return {
        "images_per_slice": results[0].images,
        "slices": {
            r.name: {
                "accuracy": round(r.accuracy, 5),
                "refused": round(r.refused, 5),
                "calibration_error": round(r.calibration_error, 5),
            }
            for r in results
        },
    }


def format_results(results: list[SliceResult]) -> str:
    lines = [f"{'slice':<22}{'images':>8}{'accuracy':>10}{'refused':>9}{'ECE':>8}"]
    for r in results:
        lines.append(
            f"{r.name:<22}{r.images:>8}{r.accuracy:>10.2%}{r.refused:>9.2%}"
            f"{r.calibration_error:>8.2%}"
        )
    return "\n".join(lines)
