"""Request bodies of the load benchmark's workloads, made from MNIST test digits.

Deterministic: the same digit index and seed give the same bytes. Each workload is what a
kind of client really sends:

- ``canvas``: the home page's drawing pad, a JSON body with the data URI of its PNG export
  (RGBA, 140x140, black ink on opaque white paper, anti-aliased edges), as
  ``flaskandmnist/web/static/canvas.js`` paints it;
- ``photo``: a phone photo of the digit on paper, a 12 megapixel JPEG (4032x3024) of grey
  paper under uneven light, with sensor noise;
- ``scan``: a black-on-white greyscale PNG of a scanned slip, the digit inside wide margins;
- ``mnist28``: the 28x28 MNIST PNG itself, the smallest reference.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

WORKLOADS = ("canvas", "photo", "scan", "mnist28")
#: The pad's export side (EXPORT_SIDE in canvas.js).
CANVAS_SIDE = 140
PHOTO_SIZE = (4032, 3024)
SCAN_SIZE = (1000, 1000)


@dataclass(frozen=True)
class Body:
    """One request: what is POSTed to /api/v1/predictions, and how it is declared."""

    workload: str
    data: bytes
    content_type: str


def _ink(digit: np.ndarray, side: int) -> np.ndarray:
    """The MNIST digit enlarged so its longest side is ``side`` px, as strokes of full ink with
    anti-aliased edges (float32 in [0, 1]): how a pen or a canvas line looks, not a blurred
    enlargement of 28x28 pixels."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = side / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    big = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC), np.float32)
    # A steep ramp around half intensity: solid strokes, a one or two pixel soft edge.
    return np.clip((big - 96.0) / 64.0, 0.0, 1.0)


def _paste(page: np.ndarray, ink: np.ndarray, centre: tuple[float, float]) -> None:
    """Adds ``ink`` (1 = ink) to ``page`` (1 = ink) centred at the fractions ``centre``."""
    top = round(centre[0] * page.shape[0] - ink.shape[0] / 2)
    left = round(centre[1] * page.shape[1] - ink.shape[1] / 2)
    window = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    np.maximum(window, ink, out=window)


def _png(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def canvas(digit: np.ndarray, rng: np.random.Generator) -> Body:
    """The pad's request: the digit filling most of the pad, a little off centre."""
    page = np.zeros((CANVAS_SIDE, CANVAS_SIDE), np.float32)
    ink = _ink(digit, round(CANVAS_SIDE * rng.uniform(0.6, 0.8)))
    _paste(page, ink, (0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05)))
    rgba = np.empty((CANVAS_SIDE, CANVAS_SIDE, 4), np.uint8)
    rgba[..., :3] = np.rint(255.0 * (1.0 - page))[..., None]
    rgba[..., 3] = 255  # browsers export RGBA even when every pixel is opaque
    uri = "data:image/png;base64," + base64.b64encode(_png(rgba, "RGBA")).decode("ascii")
    data = json.dumps({"image": uri, "source": "canvas"}).encode()
    return Body("canvas", data, "application/json")


def photo(digit: np.ndarray, rng: np.random.Generator) -> Body:
    """A 12 MP phone photo: grey paper lit from one side, pen ink, noise, JPEG quality 90."""
    width, height = PHOTO_SIZE
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    light = 0.55 + 0.25 * u + 0.1 * v - 0.15 * (u - 0.6) ** 2  # brighter towards one corner
    page = np.zeros((height, width), np.float32)
    ink = _ink(digit, round(height * rng.uniform(0.35, 0.5)))
    _paste(page, ink, (0.5 + rng.uniform(-0.08, 0.08), 0.5 + rng.uniform(-0.08, 0.08)))
    grey = light * (0.82 - 0.62 * page)  # paper reflects 82 %, ink 20 %, of the light
    noise = rng.normal(0.0, 0.02, (height, width, 3)).astype(np.float32)
    tint = np.array([1.0, 0.98, 0.93], np.float32)  # warm indoor light
    rgb = np.clip((grey[..., None] * tint + noise) * 255.0, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "JPEG", quality=90)
    return Body("photo", buffer.getvalue(), "image/jpeg")


def scan(digit: np.ndarray, rng: np.random.Generator) -> Body:
    """A scanned slip: black on white, the digit a third of the page inside wide margins."""
    width, height = SCAN_SIZE
    page = np.zeros((height, width), np.float32)
    ink = _ink(digit, round(height * rng.uniform(0.25, 0.35)))
    _paste(page, ink, (0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)))
    grey = np.rint(255.0 * (1.0 - page)).astype(np.uint8)
    return Body("scan", _png(grey, "L"), "image/png")


def mnist28(digit: np.ndarray, rng: np.random.Generator) -> Body:
    """MNIST's own 28x28 PNG (light digit on black), as before these workloads."""
    del rng  # nothing to vary
    return Body("mnist28", _png(digit, "L"), "image/png")


_MAKERS = {"canvas": canvas, "photo": photo, "scan": scan, "mnist28": mnist28}


def make_body(workload: str, digit: np.ndarray, seed: int = 0) -> Body:
    """The body of ``workload`` for one MNIST digit (uint8, 28x28, light on black)."""
    return _MAKERS[workload](digit, np.random.default_rng(seed))
