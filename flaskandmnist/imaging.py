"""The one image pipeline: any uploaded image -> the 28x28 MNIST format the model was trained on.

MNIST digits are size-normalised to fit a 20x20 box (aspect ratio kept, anti-aliased) and then
placed in a 28x28 field so that their centre of mass is at the centre; ink is 1, background 0.
:func:`to_mnist` reproduces that from real photos, scans and canvas drawings:

1. decode safely (size limits before decoding, first frame, EXIF orientation) and reduce huge
   images to a working resolution;
2. turn pixels into one signal: alpha where the background is transparent, luminance otherwise;
3. estimate the paper's level from the border of the image (which removes uneven lighting),
   take the polarity from the side to which the image departs from it, and stretch so that
   the background is 0 and the ink is 1;
4. keep the strokes that make up the digit (no specks, scan edges, frames or ruled lines);
5. crop, thicken strokes much thinner than MNIST's, scale the longest side to 20 px and centre
   by centre of mass in 28x28.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage as ndi

from flaskandmnist.config import Settings

MNIST_SIDE = 28
#: The digit's longest side in MNIST.
DIGIT_SIDE = 20
#: MNIST's centres of mass lie in [13.5, 14.5] (row and column index): (14, 14) up to the
#: whole-pixel shift MNIST applied.
MNIST_CENTRE = 14.0
#: Formats accepted; anything else (EPS, which runs Ghostscript, fonts, icons, ...) is refused.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
#: FORMATS as a person reads them: the upload hint and the error messages name the same list.
FORMAT_NAMES = (
    ", ".join(name.replace("WEBP", "WebP") for name in FORMATS[:-1]) + f" or {FORMATS[-1]}"
)

# Longest side of the working image. Plenty for a 20 px digit, and it bounds the work per image.
_WORK_SIDE = 1024
# Longest side a JPEG is decoded at, at least: a digit that fills a tenth of a photo's side
# still spans twice its 20 px in MNIST.
_DRAFT_SIDE = 512
# Outer band of the image (fraction of its shorter side) where the background shows.
_BORDER_BAND = 0.04
# Scan and photo edges (paper edges, scanner lines and frames, a strip of table) lie mostly
# within this fraction of the image from its border and run along at least _EDGE_SPAN of a side.
_EDGE_BAND, _EDGE_SPAN = 0.15, 0.6
# The background is fitted to the border in this many rounds, each keeping this share of the
# border closest to the previous fit: the paper, when ink covers up to 40 % of the border.
_FIT_ROUNDS, _PAPER_SHARE = 4, 0.6
# How far the image may depart from the estimated background away from the ink (noise,
# lighting the estimate does not follow) before the estimate counts as wrong.
_PAPER_TOLERANCE = 0.2
# Points per edge of the image from which the background is estimated.
_EDGE_SAMPLES = 64
# Ink contrast below this (in units of full white - black) is noise, not writing.
_MIN_CONTRAST = 0.08
# Percentile of the ink pixels that maps to 1: a robust "ink level", so that faint pencil yields
# a full-strength digit while a few dark specks do not set the scale.
_INK_PERCENTILE = 80
# Strokes are ink above half the ink level. Pieces of strokes joined by ink above a quarter of
# it belong together (a faint or broken line); fainter ink alone (ruled lines, shading) is not
# part of the digit.
_STROKE_LEVEL, _LINK_LEVEL = 0.5, 0.25
# The digit's main component must cover at least this fraction of the image (and a few pixels).
_MIN_INK_FRACTION = 2e-4
_MIN_INK_PIXELS = 6
# Components lighter than this fraction of the main one are specks, and left out.
_SPECK_FRACTION = 0.02
# Heavier components join the digit when they lie within this fraction of its size.
_JOIN_MARGIN = 0.25
# Stroke width / longest side of the digit. On MNIST (enlarged 8x to measure it) the median is
# 0.14 and the 1st percentile 0.075. Thinner strokes (a pen line on a big canvas) are thickened
# to the target. Bold strokes are left as they are: MNIST has its share of them, and eroding a
# blob does not bring back its loops.
_THIN, _THIN_TARGET = 0.075, 0.13
# Stroke width is adjusted at about this resolution (longest side), a few times the output's.
_STROKE_SIDE = 80

# Every MNIST digit's brightest pixel is 254 or 255 of 255.
_FULL_INK = 254 / 255

_BOMB_LOCK = threading.Lock()
_BLANK = "No digit found: the image is blank or has too little contrast."

#: A smooth surface over the image, given coordinates u (columns) and v (rows) in [0, 1].
Surface = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ImageError(ValueError):
    """The image cannot be turned into a digit; the message is meant for the user."""


class UnreadableImageError(ImageError):
    """Not an image, corrupt, or in an unsupported format."""


class NotAnImageError(UnreadableImageError):
    """The bytes are not an image in any accepted format (whatever the client declared)."""


class BlankImageError(ImageError):
    """The image holds no ink that could be a digit."""


class ImageTooLargeError(ImageError):
    """The file's bytes or the image's pixels exceed the configured limit."""


def load_image(data: bytes, *, max_pixels: int, max_bytes: int) -> Image.Image:
    """Decode the first frame of ``data`` upright, refusing oversized input before decoding it.

    Large JPEGs are decoded in grey at a reduced scale (never below ``_DRAFT_SIDE``). The
    result's ``format`` is what Pillow recognised in the bytes, never the client's claim.
    """
    if not data:
        raise UnreadableImageError("The file is empty.")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes."
        )
    try:
        # Image.open reads only the header. Pillow's own bomb check warns (or raises) there; the
        # warning is made an error so that it reaches the caller as ImageTooLargeError. The filter
        # is process-wide, hence the lock.
        with _BOMB_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"The image is {width}x{height} = {width * height:,} pixels; "
                f"the limit is {max_pixels:,} pixels."
            )
        # JPEG decodes at 1/2, 1/4 or 1/8 scale (DCT scaling) and straight to grey (its
        # luma), for a fraction of the full decode's time; other formats ignore the draft.
        reduction = math.ceil(max(width, height) / _DRAFT_SIDE)
        image.draft("L", (math.ceil(width / reduction), math.ceil(height / reduction)))
        image.load()
        upright = ImageOps.exif_transpose(image)
        upright.format = image.format  # a transposed copy has none
        return upright
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses in Image.open, before the size can be read, images above its own
        # limit (Image.MAX_IMAGE_PIXELS, a warning made an error above): one limit is named,
        # the lower of the two, never Pillow's text beside ours.
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ImageTooLargeError(
            f"The image has more pixels than allowed: the limit is {limit:,} pixels."
        ) from None
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"The file is not an image in a supported format ({FORMAT_NAMES})."
        ) from None
    except Exception as error:  # Pillow's decoders raise many types on malformed input.
        raise UnreadableImageError(
            f"The file is not a readable image ({FORMAT_NAMES}): {error}"
        ) from None


def to_mnist(
    data: bytes,
    *,
    max_pixels: int = Settings.max_image_pixels,
    max_bytes: int = Settings.max_image_bytes,
) -> np.ndarray:
    """Image file bytes -> (28, 28) float32 in [0, 1], ink 1, as MNIST."""
    return to_mnist_image(load_image(data, max_pixels=max_pixels, max_bytes=max_bytes))


def to_mnist_array(image: np.ndarray) -> np.ndarray:
    """An image array -> (28, 28) float32 in [0, 1], ink 1, as MNIST.

    ``image`` is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; uint8, uint16 (grey only) or
    float in [0, 1] (grey only).
    """
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    try:
        pil = Image.fromarray(array)
    except (TypeError, ValueError) as error:
        raise UnreadableImageError(
            f"Unsupported image array {array.shape} {array.dtype}: {error}"
        ) from None
    return to_mnist_image(pil)


def to_mnist_image(image: Image.Image) -> np.ndarray:
    """A decoded image (first frame, upright; no size limits apply) -> (28, 28) float32 in
    [0, 1], ink 1, as MNIST."""
    signal, transparent = _signal(image)
    if not transparent and signal.shape == (MNIST_SIDE, MNIST_SIDE):
        # MNIST's own digits, and clients that prepare theirs the same way, are used as sent
        # (dark on light: inverted): the pipeline would only re-render them, and it takes
        # most of a request's CPU time. (Other sizes skip this: no inverted copy of a photo.)
        for digit in (signal, 1.0 - signal):
            if _in_mnist_format(digit):
                return digit
    if np.ptp(border := _border(signal)) == 0:
        # A border of one exact level is drawn, not photographed (a canvas export, a clean
        # digital scan; on a transparent background the signal is the paint, and its border
        # 0): the paper is that level, and every pixel off it is the digit. Nothing needs
        # removing, so the digit is only cropped, scaled and centred.
        return _drawn_digit(signal, float(border[0]))
    # On a transparent background the signal is the paint, and the background 0; any other
    # background is estimated.
    return _digit(_normalise(signal, 0.0 if transparent else _background(signal)))


def mnist_to_png(array: np.ndarray) -> bytes:
    """The (28, 28) array the model saw -> an 8-bit grayscale PNG."""
    array = np.asarray(array)
    if array.shape != (MNIST_SIDE, MNIST_SIDE):
        raise ValueError(f"expected a {MNIST_SIDE}x{MNIST_SIDE} array, got {array.shape}")
    grey = np.rint(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


def _signal(image: Image.Image) -> tuple[np.ndarray, bool]:
    """One float32 channel in [0, 1] at working resolution in which the digit stands out, and
    whether it is the alpha channel of paint on a transparent background."""
    has_alpha = image.has_transparency_data
    if has_alpha and image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        # Every pixel opaque, as browsers export a pad painted on white: the alpha says nothing.
        has_alpha = False
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        scale = 1.0 if image.mode == "F" else 65535.0  # 16-bit grey (mode I: 16-bit data too)
        image = image.convert("F")
        has_alpha = False
    else:
        scale = 255.0
        image = image.convert("LA" if has_alpha else "L")
    reduction = math.ceil(max(image.size) / _WORK_SIDE)
    if reduction > 1:
        image = image.reduce(reduction)
    array = np.asarray(image, dtype=np.float32) / scale
    if not has_alpha:
        return np.clip(array, 0.0, 1.0), False
    luminance, alpha = array[..., 0], array[..., 1]
    border_alpha = _border(alpha)
    if np.median(border_alpha) < 0.5:
        # Transparent background, as a browser canvas exports it: the ink is wherever there is
        # paint, whatever its colour (the transparent pixels are often black too).
        return alpha, True
    # Opaque background with transparent patches: show those patches as background.
    paper = np.median(_border(luminance)[border_alpha >= 0.5])
    return alpha * luminance + (1.0 - alpha) * paper, False


def _in_mnist_format(signal: np.ndarray) -> bool:
    """Whether a 28x28 signal already is a digit as MNIST has them: a full-strength light
    digit on black (the outer ring of pixels black), longest side 20 px, centre of mass
    within half a pixel of the centre. Of MNIST's 70,000 digits, 98.7 % are."""
    if _border(signal).any() or signal.max() < _FULL_INK:
        return False
    rows, cols = np.flatnonzero(signal.any(axis=1)), np.flatnonzero(signal.any(axis=0))
    if max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 != DIGIT_SIDE:
        return False
    # The centre of mass from the row and column sums: a fifth of scipy's time on 28x28.
    grid, total = np.arange(MNIST_SIDE), signal.sum()
    centre = np.array((signal.sum(axis=1) @ grid, signal.sum(axis=0) @ grid)) / total
    return bool(np.all(np.abs(centre - MNIST_CENTRE) <= 0.5))


def _digit(ink: np.ndarray) -> np.ndarray:
    """The ink map of one image -> its digit in MNIST's 28x28 format."""
    # Stroke pixels, labelled by the linked piece of ink they are in.
    labels, count = ndi.label(ink > _LINK_LEVEL, structure=np.ones((3, 3)))
    labels[ink <= _STROKE_LEVEL] = 0
    (top, left, bottom, right), kept = _select(ink, labels, count)
    # The kept strokes with their anti-aliased rims (below the stroke level, at most two
    # pixels wide); everything else around them (specks, lines, noise) is erased.
    rim = 2
    box = np.s_[max(top - rim, 0) : bottom + rim, max(left - rim, 0) : right + rim]
    digit = ndi.maximum_filter(kept[labels[box]], size=2 * rim + 1)
    return _place(_render(_trim(np.where(digit, ink[box], 0.0))))


def _drawn_digit(signal: np.ndarray, paper: float) -> np.ndarray:
    """A drawn image's signal (nothing on it but the digit, on paper of exactly one level)
    -> its digit in MNIST's 28x28 format."""
    off_paper = signal != paper
    rows, cols = np.flatnonzero(off_paper.any(axis=1)), np.flatnonzero(off_paper.any(axis=0))
    if not rows.size:
        raise BlankImageError(_BLANK)
    # Only the digit's box is normalised: outside it there is nothing but paper, and the
    # paper being one exact level, there is no noise above it.
    box = signal[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink = _stretch(_ink(box, paper), floor=0.0)
    if np.count_nonzero(ink > _STROKE_LEVEL) < _min_ink_pixels(signal.size):
        raise BlankImageError("No digit found: only specks of ink.")
    return _place(_render(_trim(ink)))


def _min_ink_pixels(size: int) -> float:
    """The fewest stroke pixels a digit has on an image of ``size`` pixels."""
    return max(_MIN_INK_PIXELS, _MIN_INK_FRACTION * size)


def _normalise(signal: np.ndarray, background: np.ndarray | float) -> np.ndarray:
    """Ink map: background 0, ink 1, whatever the polarity, lighting and contrast."""
    ink = _ink(signal, background)
    # Noise floor from the band along the border, where the background shows.
    border = _border(ink)
    median = np.median(border)
    return _stretch(ink, floor=median + 4.5 * np.median(np.abs(border - median)))


def _stretch(ink: np.ndarray, floor: float) -> np.ndarray:
    """``ink`` scaled so that its noise ``floor`` is 0 and the ink's own level 1."""
    # The ink level, from the pixels clearly above the floor.
    above = ink[ink > floor + _MIN_CONTRAST / 2]
    level = np.percentile(above, _INK_PERCENTILE) if above.size else floor
    if level - floor < _MIN_CONTRAST:
        raise BlankImageError(_BLANK)
    return np.clip((ink - floor) / (level - floor), 0.0, 1.0).astype(np.float32)


def _ink(signal: np.ndarray, background: np.ndarray | float) -> np.ndarray:
    """How far each pixel departs from the background towards the ink."""
    deviation = signal - background
    # Polarity: the side on which the image departs further from its background, counting
    # pixel by pixel (the mean would flip a bold digit; a plain comparison with the border
    # would flip a photo lit brighter in the middle than at its edges).
    visible = np.abs(deviation) > _MIN_CONTRAST / 2
    if deviation[visible].sum() >= 0:
        return deviation
    # Dark ink on paper: both reflect the light falling on them, so the ink's contrast scales
    # with the lighting. Relative to the paper's level, it does not.
    return -deviation / np.maximum(background, _MIN_CONTRAST)


def _background(image: np.ndarray) -> np.ndarray:
    """The paper's level, estimated from the border, where the paper shows.

    A Coons patch through the border is exact for lighting that varies along the edges (a
    shadow's edge) but follows ink that runs along the border of a tight crop; a quadratic
    surface fitted robustly to the border ignores such ink but is smooth. The right estimate
    leaves nothing well beyond the paper (no pixel much lighter than the paper, for dark ink);
    a wrong one carries ink from the border into the image, or bends away from a shadow.
    Where both are right, the Coons patch is kept.
    """
    band = _band(image.shape)
    # Each edge as a profile: the median across the band, at most _EDGE_SAMPLES points along
    # it (lighting varies slowly).
    strips = (image[:band], image[-band:], image[:, :band].T, image[:, -band:].T)
    edges = [
        _resample(np.median(strip, axis=0), min(strip.shape[1], _EDGE_SAMPLES)) for strip in strips
    ]
    u = np.linspace(0.0, 1.0, image.shape[1], dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, image.shape[0], dtype=np.float32)[:, None]
    # The estimates are compared on a sample of the image, the winner computed in full.
    step = math.ceil(max(image.shape) / _EDGE_SAMPLES)
    sample, u_sample, v_sample = image[::step, ::step], u[:, ::step], v[::step]
    best = min(
        (_coons(*edges), _quadratic(*edges)),
        key=lambda surface: float(
            np.maximum(-_ink(sample, surface(u_sample, v_sample)) - _PAPER_TOLERANCE, 0.0).mean()
        ),
    )
    return best(u, v)


def _coons(top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray) -> Surface:
    """Bilinearly blended Coons patch through the edges, after a running median over half of
    each edge removes ink crossing the border."""
    top, bottom, left, right = (
        ndi.median_filter(edge, size=max(1, edge.size // 2), mode="mirror")
        for edge in (top, bottom, left, right)
    )

    def surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        # Top and bottom less their chords, blended vertically, plus the sides blended
        # horizontally (the usual Coons formula, rearranged).
        t, b = ((_resample(edge, u.size) - _chord(edge, u))[None, :] for edge in (top, bottom))
        le, r = (_resample(edge, v.size)[:, None] for edge in (left, right))
        return (1 - v) * t + v * b + ((1 - u) * le + u * r)

    return surface


def _quadratic(top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray) -> Surface:
    """Quadratic surface fitted to the edges by trimmed least squares: ink may cover up to
    40 % of the border, on one side of the paper's level."""
    along = [np.linspace(0.0, 1.0, edge.size) for edge in (top, bottom, left, right)]
    x = np.concatenate([along[0], along[1], np.zeros(left.size), np.ones(right.size)])
    y = np.concatenate([np.zeros(top.size), np.ones(bottom.size), along[2], along[3]])
    level = np.concatenate([top, bottom, left, right])
    design = np.stack([np.ones_like(x), x, x * x, y, y * y, x * y], axis=1)
    # Start from the median (the paper's level if it is most of the border), then alternate:
    # keep the _PAPER_SHARE of the border closest to the fit, fit to those.
    fit = np.median(level)
    for _ in range(_FIT_ROUNDS):
        residual = np.abs(level - fit)
        keep = residual <= np.quantile(residual, _PAPER_SHARE)
        coefficients = np.linalg.lstsq(design[keep], level[keep], rcond=None)[0]
        fit = design @ coefficients
    a, b, c, d, e, f = coefficients.astype(np.float32)

    def surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (a + b * u + c * u * u) + (d * v + e * v * v) + f * u * v

    return surface


def _chord(profile: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The straight line between the ends of ``profile``, at positions ``u`` in [0, 1]."""
    return ((1 - u) * profile[0] + u * profile[-1]).ravel()


def _resample(profile: np.ndarray, size: int) -> np.ndarray:
    """``profile`` linearly interpolated at ``size`` evenly spaced points."""
    positions = np.arange(size) * ((profile.size - 1) / max(size - 1, 1))
    return np.interp(positions, np.arange(profile.size), profile).astype(np.float32)


def _select(
    ink: np.ndarray, labels: np.ndarray, count: int
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The digit's bounds (top, left, bottom, right), and which labels make it up."""
    if count == 0:
        raise BlankImageError("No digit found: the image is blank.")
    # Per component, from the stroke pixels only (a small share of the image).
    pixels = np.flatnonzero(labels)
    label = labels.ravel()[pixels]
    area = np.bincount(label, minlength=count + 1)[1:]
    mass = np.bincount(label, weights=ink.ravel()[pixels], minlength=count + 1)[1:]
    bounds = np.array(
        [
            (box[0].start, box[1].start, box[0].stop, box[1].stop) if box else (0, 0, 0, 0)
            for box in ndi.find_objects(labels, max_label=count)
        ]
    )
    # Scan and photo edges (paper edges, scanner lines and frames, a strip of table): long, and
    # lying mostly within the outer band of the image. A digit may lie along the border of a
    # tight crop, so they go only if other ink remains.
    height, width = labels.shape
    row, col = np.divmod(pixels, width)
    rows, cols = round(height * _EDGE_BAND), round(width * _EDGE_BAND)
    outer = (row < rows) | (row >= height - rows) | (col < cols) | (col >= width - cols)
    in_band = np.bincount(label[outer], minlength=count + 1)[1:]
    span = np.maximum((bounds[:, 2] - bounds[:, 0]) / height, (bounds[:, 3] - bounds[:, 1]) / width)
    edge = (in_band >= 0.5 * area) & (span >= _EDGE_SPAN)
    if not edge.all():
        mass[edge] = 0.0
    main = int(np.argmax(mass))
    if area[main] < _min_ink_pixels(labels.size):
        raise BlankImageError("No digit found: only specks of ink.")
    # Join heavy components near the digit (the separate strokes of a 4, 5 or 7), growing
    # the box as they join. Specks are left out.
    heavy = mass >= _SPECK_FRACTION * mass[main]
    kept = np.arange(count) == main
    box = bounds[main]
    while True:
        margin = _JOIN_MARGIN * max(box[2] - box[0], box[3] - box[1])
        near = (bounds[:, :2] <= box[2:] + margin).all(axis=1)
        near &= (bounds[:, 2:] >= box[:2] - margin).all(axis=1)
        joining = heavy & near & ~kept
        if not joining.any():
            break
        kept |= joining
        box = np.concatenate([bounds[kept, :2].min(axis=0), bounds[kept, 2:].max(axis=0)])
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3])), np.concatenate([[False], kept])


def _render(digit: np.ndarray) -> np.ndarray:
    """The digit scaled to a longest side of 20 px, thin strokes thickened to MNIST's."""
    longest = max(digit.shape)
    if _stroke_width(digit > 0.5) / longest < _THIN:
        # Thicken at a few times the output's resolution. Max-pooling down to it keeps even
        # hairlines at full strength (averaging would fade them).
        digit = _max_pool(digit, max(1, longest // _STROKE_SIDE))
        longest, width = max(digit.shape), _stroke_width(digit > 0.5)
        # The radius that brings the width to the target relative to the grown digit.
        radius = (_THIN_TARGET * longest - width) / (2 * (1 - _THIN_TARGET))
        digit = _trim(_thicken(np.pad(digit, math.ceil(radius + 1)), radius))
        longest = max(digit.shape)
    height, width = digit.shape
    size = (
        max(1, round(width * DIGIT_SIDE / longest)),
        max(1, round(height * DIGIT_SIDE / longest)),
    )
    # BOX (area coverage) is the anti-aliasing MNIST has; enlarging uses bilinear interpolation.
    resample = Image.Resampling.BOX if longest >= DIGIT_SIDE else Image.Resampling.BILINEAR
    scaled = np.asarray(Image.fromarray(digit.astype(np.float32)).resize(size, resample))
    # Every MNIST digit's darkest pixel is 254 or 255 of 255: so is ours.
    return np.clip(scaled / scaled.max(), 0.0, 1.0)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: area / length, the length being half the boundary."""
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
    interior &= padded[1:-1, :-2] & padded[1:-1, 2:]
    area = np.count_nonzero(mask)
    return 2 * area / max(area - np.count_nonzero(interior), 1)


def _thicken(ink: np.ndarray, radius: float) -> np.ndarray:
    """Dilate the strokes by ``radius`` pixels, with an anti-aliased edge."""
    distance = ndi.distance_transform_edt(ink <= 0.5)
    return np.maximum(ink, np.clip(radius + 0.5 - distance, 0.0, 1.0))


def _place(digit: np.ndarray) -> np.ndarray:
    """Put the digit in 28x28 with its centre of mass at MNIST's centre (whole-pixel shift)."""
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    height, width = digit.shape
    rows, cols = ndi.center_of_mass(digit)
    top = min(max(round(MNIST_CENTRE - rows), 0), MNIST_SIDE - height)
    left = min(max(round(MNIST_CENTRE - cols), 0), MNIST_SIDE - width)
    out[top : top + height, left : left + width] = digit
    return out


def _max_pool(array: np.ndarray, step: int) -> np.ndarray:
    """Maximum over ``step`` x ``step`` blocks (zero-padded to whole blocks)."""
    height, width = array.shape
    padded = np.pad(array, ((0, -height % step), (0, -width % step)))
    # The maximum of the step x step strided views: far faster than reducing a 4-D reshape.
    return functools.reduce(
        np.maximum, (padded[i::step, j::step] for i in range(step) for j in range(step))
    )


def _trim(array: np.ndarray) -> np.ndarray:
    """``array`` cut to the bounding box of its nonzero pixels."""
    rows, cols = np.flatnonzero(array.any(axis=1)), np.flatnonzero(array.any(axis=0))
    return array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _band(shape: tuple[int, ...]) -> int:
    """Width of the outer band of an image, where its background shows."""
    return max(1, round(min(shape[:2]) * _BORDER_BAND))


def _border(array: np.ndarray) -> np.ndarray:
    """Values in the outer band of a 2-D array."""
    width = _band(array.shape)
    return np.concatenate(
        [
            array[:width].ravel(),
            array[-width:].ravel(),
            array[width:-width, :width].ravel(),
            array[width:-width, -width:].ravel(),
        ]
    )
