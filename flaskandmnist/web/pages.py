"""HTML pages for people: home (draw or upload), history, one prediction, corrections.

Drawing and uploading on the home page go to the JSON API from static scripts (the
Content-Security-Policy allows no inline script). The forms here are what works without
script, and those that post carry a CSRF token. Bad input raises :class:`ApiError`, which
the error handlers render as ``error.html`` with its status (400, 404), never a 500.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from flaskandmnist.domain import (
    DIGITS,
    NOT_A_DIGIT_MESSAGE,
    Correction,
    Prediction,
    PredictionSummary,
)
from flaskandmnist.imaging import FORMAT_NAMES

from .errors import ApiError
from .params import listing_query, parse_prediction_id
from .security import private
from .services import services

bp = Blueprint("pages", __name__)

_SOURCE_LABELS = {"canvas": "Drawing", "upload": "Upload", "api": "API", "legacy": "Legacy API"}
_DIGIT_VALUES = {str(digit): digit for digit in DIGITS}


# --- template filters (the same formatting on every page) ---------------------------------


@bp.app_template_filter("percent")
def percent(value: float) -> str:
    """A probability as a percentage; 0.9996 is "99.9%", not a "100%" it is not.

    static/result.js formats the results it shows the same way.
    """
    if value >= 1:
        return "100%"
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{int(value * 1000) / 10:.1f}%"


@bp.app_template_filter("png_data_uri")
def png_data_uri(png: bytes) -> str:
    """A data: URI of a (small) PNG, so a page of thumbnails needs no further requests."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@bp.app_template_filter("isotime")
def isotime(moment: datetime) -> str:
    """ISO 8601 in UTC, for <time datetime>; static/app.js shows it in local time."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@bp.app_template_filter("utctime")
def utctime(moment: datetime) -> str:
    """What a reader without script sees: the UTC time, labelled as such."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("source_label")
def source_label(source: str) -> str:
    return _SOURCE_LABELS.get(source, source)


@bp.app_template_filter("input_label")
def input_label(prediction: Prediction) -> str:
    """The input a result belongs to, as "Result for ..." goes on (static/result.js says
    it the same way)."""
    if prediction.source == "canvas":
        return "your drawing"
    if prediction.filename:
        return f"the file {prediction.filename}"
    return "an uploaded image" if prediction.source == "upload" else "an image sent by a program"


@bp.app_template_filter("answer")
def answer(item: Prediction | PredictionSummary) -> str:
    """The model's answer in words (static/result.js says it the same way)."""
    return "Not a digit" if item.not_a_digit else str(item.digit)


@bp.app_template_global("not_a_digit_message")
def not_a_digit_message() -> str:
    return NOT_A_DIGIT_MESSAGE


@bp.app_template_filter("correction_text")
def correction_text(correction: Correction, not_a_digit: bool = False) -> str:
    """What a person's answer did: picking the model's own digit confirms it."""
    if not_a_digit:
        return f"corrected to {correction.true_digit} (the model said it is not a digit)"
    if correction.true_digit == correction.predicted_digit:
        return f"confirmed as {correction.true_digit}"
    return f"corrected to {correction.true_digit} (the model said {correction.predicted_digit})"


@bp.app_template_filter("filesize")
def filesize(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --- pages -------------------------------------------------------------------------------


@bp.get("/")
def home() -> str:
    return render_template(
        "home.html",
        predictions_url=url_for("api.create_prediction"),
        max_image_bytes=services().settings.max_image_bytes,
        formats=FORMAT_NAMES,
    )


@bp.get("/models")
def models() -> str:
    """The registered model versions and their figures; which one is active."""
    registry = services().registry
    active = registry.active()
    return render_template(
        "models.html",
        versions=registry.versions()[::-1],
        active=active.version if active is not None else None,
        serving=services().classifier.version,
        history=registry.history(),
    )


@bp.get("/history")
@private
def history() -> str:
    """Recent predictions, newest first; ``digit``, ``day`` and the ``before`` cursor."""
    page_size = services().settings.web.page_size
    query = listing_query(request.args, page_size)
    page = services().store.page(query.limit, query.before, query.digit, query.day)
    # Links keep the filters, and the page size only when someone chose another one.
    limit = query.limit if query.limit != page_size else None
    export_args = {"digit": query.digit, "day": query.day}
    return render_template(
        "history.html",
        items=page.items,
        true_digits=services().store.true_digits([item.id for item in page.items]),
        csv_url=url_for("api.export_csv", **export_args),
        zip_url=url_for("api.export_zip", **export_args),
        digit=query.digit,
        day=query.day,
        before=query.before,
        older_url=url_for("pages.history", limit=limit, **query.args(page.next_before))
        if page.next_before
        else None,
        newest_url=url_for("pages.history", limit=limit, **query.args(None)),
    )


@bp.get("/predictions/<prediction_id>")
@private
def prediction(prediction_id: str) -> str:
    found = services().prediction(prediction_id)
    return render_template(
        "prediction.html",
        prediction=found,
        correction=services().store.correction(found.id),
        just_made=False,
    )


@bp.post("/predictions/<prediction_id>/delete")
@private
def delete(prediction_id: str) -> Response:
    """Removes the prediction and everything stored with it, then shows the history."""
    services().store.delete(parse_prediction_id(prediction_id))
    flash(
        f"Deleted prediction {prediction_id}: its images, its record and its correction.",
        "success",
    )
    return redirect(url_for("pages.history"), code=303)


@bp.post("/predictions/<prediction_id>/correction")
@private
def correct(prediction_id: str) -> Response:
    """Stores the true digit a person gave (form field ``digit``) and shows the record."""
    digit = _DIGIT_VALUES.get(request.form.get("digit", "").strip())
    if digit is None:
        raise ApiError(400, "bad_digit", "Choose the true digit: a whole number from 0 to 9.")
    # An unknown id raises UnknownPrediction: a 404 page.
    correction = services().store.save_correction(parse_prediction_id(prediction_id), digit)
    refused = services().prediction(prediction_id).not_a_digit
    flash(f"Thank you: {correction_text(correction, refused)}.", "success")
    # 303: the browser fetches the record with GET; a reload does not post again.
    return redirect(url_for("pages.prediction", prediction_id=prediction_id), code=303)
