"""Predictions with real PNG images, for the storage and cqlsh tests."""

from __future__ import annotations

import io
from datetime import datetime

from PIL import Image

from flaskandmnist.domain import Prediction


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A real grayscale PNG with some ink, different per seed."""
    image = Image.new("L", (width, height), 0)
    image.putpixel((seed % width, (seed // width) % height), 255)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_prediction(
    digit: int = 7,
    *,
    image: bytes | None = None,
    filename: str = "digit.png",
    created_at: datetime | None = None,
    seed: int = 0,
) -> Prediction:
    probabilities = [0.001] * 10
    probabilities[digit] = 0.991
    return Prediction.create(
        source=("upload", "canvas", "api")[seed % 3],
        image=png(40, 50, seed) if image is None else image,
        content_type="image/png",
        filename=filename,
        model_input_png=png(28, 28, seed),
        digit=digit,
        confidence=0.991,
        probabilities=tuple(probabilities),
        model_version="mnist_deep-test",
        processing_ms=3.25 + seed,
        created_at=created_at,
    )
