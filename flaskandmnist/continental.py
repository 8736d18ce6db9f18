"""Continental ones: MNIST test 1s given the long flag much of Europe writes a 1 with, a
style MNIST hardly holds (its 1s are mostly a bare stroke), so that a model trained on it
reads many of them as 7. What the retrain test and benchmark post, correct and retrain on.

Made from MNIST's test digits only, as the robustness suite's slices are
(:mod:`flaskandmnist.suite`): drawn large on white paper, then sent through the pipeline.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from flaskandmnist.imaging import to_mnist_array
from flaskandmnist.mnist import Mnist
from flaskandmnist.suite import _brush, _enlarge, _on_paper

LABEL = 1


def _with_flag(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A page with the 1 in ``ink`` and a flag from its top, down to the left, drawn with
    the digit's own stroke width."""
    mask = ink > 0.5
    rows = np.flatnonzero(mask.any(axis=1))
    top, height = rows[0], rows[-1] - rows[0]
    x = float(np.flatnonzero(mask[top]).mean())
    stroke = max(2.0, float(ndi.distance_transform_edt(mask).max()))
    length = rng.uniform(0.35, 0.55) * height
    angle = np.radians(rng.uniform(25, 50))  # from the vertical
    image = Image.fromarray(np.uint8(mask) * 255)
    end = (x - length * np.sin(angle), top + length * np.cos(angle))
    ImageDraw.Draw(image).line([(x, top), end], fill=255, width=int(2 * stroke))
    return _on_paper(_brush(np.asarray(image) > 127, 0.5))


def indices(data: Mnist) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test 1s in two disjoint halves: one to post and correct, one to evaluate."""
    ones = np.flatnonzero(data.test_labels == LABEL)
    return ones[0::2], ones[1::2]


def pages(data: Mnist, chosen: np.ndarray, seed: int = 1) -> list[np.ndarray]:
    """The continental 1 of each chosen test digit, dark on a white page (uint8)."""
    rng = np.random.default_rng(seed)
    return [_with_flag(_enlarge(data.test_images[index]), rng) for index in chosen]


def png(page: np.ndarray) -> bytes:
    """A page as the PNG file a person would upload."""
    out = io.BytesIO()
    Image.fromarray(page).save(out, format="PNG")
    return out.getvalue()


def model_inputs(page_list: list[np.ndarray]) -> np.ndarray:
    """The pages as the model sees them, through the serving pipeline: (n, 28, 28)."""
    return np.stack([to_mnist_array(page) for page in page_list])
