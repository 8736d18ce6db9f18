"""The service's values: predictions, listings, corrections, and the rules they obey.

Storage, web and recorder code import these; none of them is tied to Cassandra's driver
beyond the time-based ids (``uuid_from_time``), which order predictions by when they were
made in every listing.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from cassandra.util import uuid_from_time

#: Where a prediction came from: the home page's upload form (or ``POST /upload``), its
#: drawing pad, the JSON API, or one of the seeds' routes (``/upload3``, ``/api/predict``,
#: ``POST /``).
SOURCES = frozenset({"upload", "canvas", "api", "legacy"})
MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 255
DIGITS = range(10)
#: A calibrated probability at least this high is an answer the service is sure of: the
#: API's ``sure`` field, and the colour every page gives the answer.
SURE_PROBABILITY = 0.9
#: What a person reads when an image holds no single digit (the API's ``not_a_digit``).
NOT_A_DIGIT_MESSAGE = (
    "This does not look like a single digit (a dot, a line, a scribble, a letter or several "
    "digits?). Draw or upload one digit, filling most of the square."
)


class UnknownPrediction(LookupError):
    """No prediction has the given id."""


def unknown_message(prediction_id: object) -> str:
    """What a person reads when no prediction has ``prediction_id`` (any text they sent)."""
    shown = str(prediction_id)
    if len(shown) > 60:
        shown = shown[:60] + "…"
    return f"No prediction has the id {shown}."


def _clean_text(value: str) -> str:
    """NFC text on one line, without control, format, surrogate or unassigned characters."""
    # Category C covers NUL, newlines, bidi overrides (U+202E) and zero-width characters,
    # which could spoof what a person reading a listing sees; whitespace becomes a space.
    kept = (
        " " if char.isspace() else char
        for char in unicodedata.normalize("NFC", value)
        if char.isspace() or unicodedata.category(char)[0] != "C"
    )
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def sanitize_filename(name: str) -> str:
    """The last path component of a client's filename, safe to store and show.

    Unicode letters are kept; directories (``/`` and ``\\``), control and invisible
    characters are dropped, runs of spaces collapsed, leading dots removed (no ``..``
    or hidden names) and the result cut to 255 characters. May return ``""``.
    """
    base = re.split(r"[/\\]", name)[-1]
    return _clean_text(base).lstrip(". ")[:MAX_FILENAME_CHARS].rstrip()


def utc_millis(moment: datetime) -> datetime:
    """``moment`` in UTC with millisecond precision, as a Cassandra timestamp holds it."""
    if moment.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class _Dated:
    created_at: datetime
    confidence: float

    @property
    def day(self) -> date:
        """The UTC day bucket the listing tables file this prediction under."""
        return self.created_at.date()

    @property
    def sure(self) -> bool:
        """Whether the answer (a digit, or "not a digit") is one to trust: the one rule."""
        return self.confidence >= SURE_PROBABILITY


@dataclass(frozen=True)
class Prediction(_Dated):
    """One prediction and the image it was made from; build new ones with :meth:`create`.

    Normalised on construction: ``created_at`` to UTC milliseconds, ``filename`` and
    ``content_type`` sanitised, ``probabilities`` to a tuple of floats.

    ``digit`` is the most probable digit; when ``not_a_digit`` the model's answer was that
    the image holds no single digit, and ``confidence`` is the probability of that answer.
    ``probabilities`` are the ten digits', then (models since "not a digit") that answer's.
    Rows stored before then have ten and read back with ``not_a_digit`` False.
    """

    id: uuid.UUID
    created_at: datetime
    source: str
    image: bytes = field(repr=False)
    content_type: str
    filename: str
    model_input_png: bytes = field(repr=False)
    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    model_version: str
    processing_ms: float
    not_a_digit: bool = False

    def __post_init__(self) -> None:
        if self.id.version != 1:
            raise ValueError(f"id must be a time-based UUID (version 1), got {self.id}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {sorted(SOURCES)}, got {self.source!r}")
        if self.digit not in DIGITS:
            raise ValueError(f"digit must be 0-9, got {self.digit!r}")
        probabilities = tuple(float(p) for p in self.probabilities)
        if len(probabilities) not in (len(DIGITS), len(DIGITS) + 1):
            raise ValueError(f"probabilities must hold 10 or 11 values, got {len(probabilities)}")
        normalised = {
            "created_at": utc_millis(self.created_at),
            "filename": sanitize_filename(self.filename),
            "content_type": _clean_text(self.content_type)[:MAX_CONTENT_TYPE_CHARS],
            "probabilities": probabilities,
            "image": bytes(self.image),
            "model_input_png": bytes(self.model_input_png),
            "digit": int(self.digit),
            "confidence": float(self.confidence),
            "processing_ms": float(self.processing_ms),
            "not_a_digit": bool(self.not_a_digit),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    @classmethod
    def create(
        cls,
        *,
        source: str,
        image: bytes,
        content_type: str,
        filename: str,
        model_input_png: bytes,
        digit: int,
        confidence: float,
        probabilities: tuple[float, ...],
        model_version: str,
        processing_ms: float,
        not_a_digit: bool = False,
        created_at: datetime | None = None,
    ) -> Prediction:
        """A new prediction with a fresh time-based id for ``created_at`` (default: now)."""
        created_at = created_at or datetime.now(UTC)
        return cls(
            # From the full-precision time: predictions made within one millisecond (the
            # precision of created_at) still list in the order they were made.
            id=uuid_from_time(created_at),
            created_at=created_at,
            source=source,
            image=image,
            content_type=content_type,
            filename=filename,
            model_input_png=model_input_png,
            digit=digit,
            confidence=confidence,
            probabilities=probabilities,
            model_version=model_version,
            processing_ms=processing_ms,
            not_a_digit=not_a_digit,
        )

    @property
    def image_size(self) -> int:
        return len(self.image)


@dataclass(frozen=True)
class PredictionSummary(_Dated):
    """A row of a listing (newest first, or per digit): no original image, the 28x28 PNG."""

    id: uuid.UUID
    created_at: datetime
    source: str
    filename: str
    content_type: str
    image_size: int
    digit: int
    confidence: float
    model_version: str
    model_input_png: bytes = field(repr=False)
    not_a_digit: bool = False

    def __post_init__(self) -> None:
        # Rows listed before "not a digit" existed have no value (None) in its column.
        object.__setattr__(self, "not_a_digit", bool(self.not_a_digit))


@dataclass(frozen=True)
class Correction:
    """The true digit a person gave for a prediction, with what retraining needs."""

    prediction_id: uuid.UUID
    true_digit: int
    predicted_digit: int
    corrected_at: datetime
    model_version: str
    model_input_png: bytes = field(repr=False)

    @classmethod
    def of(cls, prediction: Prediction, true_digit: int) -> Correction:
        """A person's correction of ``prediction``, made now."""
        return cls(
            prediction_id=prediction.id,
            true_digit=int(true_digit),
            predicted_digit=prediction.digit,
            corrected_at=utc_millis(datetime.now(UTC)),
            model_version=prediction.model_version,
            model_input_png=prediction.model_input_png,
        )


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first, and the cursor for the next (older) page."""

    items: list[PredictionSummary]
    #: Pass as ``before`` to get the next page; None on the last page.
    next_before: uuid.UUID | None
