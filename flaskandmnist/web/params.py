"""Query parameters shared by the listing API and the history page; bad values -> 400."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from werkzeug.datastructures import MultiDict

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
    day = None
    if raw := args.get("day", "").strip():
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, "bad_day", "'day' must be a date like 2026-11-21.") from None
    limit = _int_arg(args, "limit", 1, MAX_LIMIT)
    return ListingQuery(
        limit=limit or min(default_limit, MAX_LIMIT),
        before=before,
        digit=_int_arg(args, "digit", 0, 9),
        day=day,
    )
