"""Query parameters shared by the listing API and the history page; bad values -> 400."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from werkzeug.datastructures import MultiDict

from flaskandmnist.domain import UnknownPrediction, unknown_message

from .errors import ApiError

#: Most predictions one listing request may ask for.
MAX_LIMIT = 100


@dataclass(frozen=True)
class ListingQuery:
    """Which page of which listing: ``limit`` items older than ``before``, optionally only
    those naming ``digit`` and made on ``day`` (UTC)."""

    limit: int
    before: uuid.UUID | None = None
    digit: int | None = None
    day: date | None = None

    def args(self, before: uuid.UUID | None) -> dict[str, str]:
        """Query arguments for the same listing from another cursor (for 'next' links)."""
        values = {"digit": self.digit, "day": self.day, "before": before}
        return {k: str(v) for k, v in values.items() if v is not None}


def _int_arg(args: MultiDict[str, str], name: str, low: int, high: int) -> int | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, f"bad_{name}", f"'{name}' must be a whole number from {low} to {high}.")
    return int(raw)


def parse_prediction_id(text: str) -> uuid.UUID:
    """The id in a URL; text that is no prediction id is answered like an unknown id (404,
    with the same message), not with the router's generic page."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 1:
        raise UnknownPrediction(unknown_message(text))
    return parsed


def _day_arg(args: MultiDict[str, str]) -> date | None:
    if not (raw := args.get("day", "").strip()):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_day", "'day' must be a date like 2026-11-21.") from None


@dataclass(frozen=True)
class ExportQuery:
    """Which predictions an export holds: those naming ``digit`` (if given) made on ``day``
    (UTC; every day if None)."""

    digit: int | None = None
    day: date | None = None

    def args(self) -> dict[str, str]:
        values = {"digit": self.digit, "day": self.day}
        return {k: str(v) for k, v in values.items() if v is not None}


def export_query(args: MultiDict[str, str]) -> ExportQuery:
    """The export asked for by ``args`` (``digit``, ``day``)."""
    return ExportQuery(digit=_int_arg(args, "digit", 0, 9), day=_day_arg(args))


def listing_query(args: MultiDict[str, str], default_limit: int) -> ListingQuery:
    """The listing asked for by ``args`` (``limit``, ``before``, ``digit``, ``day``)."""
    before = None
    if raw := args.get("before", "").strip():
        try:
            before = uuid.UUID(raw)
        except ValueError:
            before = None
        if before is None or before.version != 1:
            raise ApiError(400, "bad_before", "'before' must be a prediction id.")
    day = _day_arg(args)
    limit = _int_arg(args, "limit", 1, MAX_LIMIT)
    return ListingQuery(
        limit=limit or min(default_limit, MAX_LIMIT),
        before=before,
        digit=_int_arg(args, "digit", 0, 9),
        day=day,
    )
