"""The versioned JSON API (``/api/v1``), described by the OpenAPI document it serves."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.http import dump_options_header

from flaskandmnist.domain import DIGITS, Prediction, PredictionSummary
from flaskandmnist.imaging import ImageError
from flaskandmnist.model_versions import Activation, ModelVersion

from . import export
from .errors import ApiError, image_error, not_a_digit
from .params import ExportQuery, export_query, listing_query, parse_prediction_id
from .security import private
from .services import services
from .uploads import parsed_json, uploads_from

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _links(prediction_id: uuid.UUID) -> dict[str, str]:
    # The image routes below are the record's URL plus a suffix; url_for is a good part of
    # a prediction's CPU time, so it runs once per blueprint.
    url = url_for("api.get_prediction", prediction_id=prediction_id)
    return {
        "url": url,
        "page_url": url_for("pages.prediction", prediction_id=prediction_id),
        "image_url": f"{url}/image",
        "input_url": f"{url}/input.png",
    }


def summary_json(item: PredictionSummary | Prediction, true_digit: int | None) -> dict[str, Any]:
    """The fields a listing shows, the true digit a person gave (None if nobody corrected
    or confirmed it), and the record's links."""
    return {
        "id": str(item.id),
        "digit": item.digit,
        "not_a_digit": item.not_a_digit,
        "confidence": item.confidence,
        "sure": item.sure,
        "model_version": item.model_version,
        "created_at": _iso(item.created_at),
        "source": item.source,
        "filename": item.filename,
        "content_type": item.content_type,
        "image_size": item.image_size,
        "true_digit": true_digit,
        **_links(item.id),
    }


def prediction_json(prediction: Prediction, true_digit: int | None = None) -> dict[str, Any]:
    """A whole record (without the image bytes, which have their own URL)."""
    return {
        **summary_json(prediction, true_digit),
        "probabilities": list(prediction.probabilities),
        "processing_ms": round(prediction.processing_ms, 3),
    }


def _created(prediction: Prediction) -> Response:
    """201 with the stored prediction; 422 ``not_a_digit`` with it when the image holds no
    single digit (it is stored all the same, so a person can correct it)."""
    body = prediction_json(prediction)
    if prediction.not_a_digit:
        error = not_a_digit()
        response = jsonify(error={"code": error.code, "message": error.message}, prediction=body)
        response.status_code = error.status
    else:
        response = jsonify(body)
        response.status_code = 201
    response.headers["Location"] = body["url"]
    return response


@bp.post("/predictions")
def create_prediction() -> Response:
    (upload,) = uploads_from(request, batch=False)
    return _created(services().recognizer.recognise(upload))


@bp.post("/predictions/batch")
def create_predictions() -> tuple[Response, int]:
    """Several images in one request: each is answered on its own (201 all stored, 207
    some refused, or the common error status when all are refused)."""
    uploads = uploads_from(request, batch=True)
    limit = services().settings.web.max_batch_images
    if len(uploads) > limit:
        raise ApiError(413, "too_many_images", f"Send at most {limit} images per batch.")
    results = []
    for index, result in enumerate(services().recognizer.recognise_many(uploads)):
        if isinstance(result, ImageError):
            error = image_error(result)
            body = {"error": {"code": error.code, "message": error.message}}
            results.append({"index": index, "status": error.status, **body})
        elif result.not_a_digit:
            error = not_a_digit()
            body = {"error": {"code": error.code, "message": error.message}}
            prediction = prediction_json(result)
            results.append({"index": index, "status": 422, **body, "prediction": prediction})
        else:
            results.append({"index": index, "status": 201, "prediction": prediction_json(result)})
    statuses = {r["status"] for r in results}
    if 201 in statuses:
        status = 201 if len(statuses) == 1 else 207
    else:
        status = statuses.pop() if len(statuses) == 1 else 422
    stored = sum("prediction" in r for r in results)
    refused = sum(r["status"] != 201 for r in results)
    return jsonify(results=results, stored=stored, refused=refused), status


@bp.get("/predictions")
@private
def list_predictions() -> Response:
    query = listing_query(request.args, services().settings.web.page_size)
    page = services().store.page(query.limit, query.before, query.digit, query.day)
    true_digits = services().store.true_digits([s.id for s in page.items])
    next_url = (
        url_for("api.list_predictions", limit=query.limit, **query.args(page.next_before))
        if page.next_before
        else None
    )
    items = [summary_json(s, true_digits.get(s.id)) for s in page.items]
    return jsonify(predictions=items, next=next_url)


def _download(name: str, query: ExportQuery) -> str:
    """The Content-Disposition of an export: a file name that says what it holds."""
    parts = ["predictions", *(str(v) for v in (query.day, query.digit) if v is not None)]
    filename = "-".join(parts) + name
    return dump_options_header("attachment", {"filename": filename})


def _stream(chunks: Iterator[bytes], mimetype: str, disposition: str) -> Response:
    # The first chunk is made here, in the view: Cassandra being down is then a 503 like
    # any other, not a download that breaks off after its headers were sent.
    first = next(chunks, b"")
    response = Response(itertools.chain([first], chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = disposition
    return response


@bp.get("/predictions.csv")
@private
def export_csv() -> Response:
    """The predictions of a day (or of all days), optionally of one digit, as CSV."""
    query = export_query(request.args)
    chunks = export.csv_chunks(services().store, query)
    return _stream(chunks, "text/csv", _download(".csv", query))


@bp.get("/predictions.zip")
@private
def export_zip() -> Response:
    """The same as a ZIP with the original and the 28x28 images."""
    query = export_query(request.args)
    chunks = export.zip_chunks(services().store, query)
    return _stream(chunks, "application/zip", _download(".zip", query))


@bp.get("/predictions/<prediction_id>")
@private
def get_prediction(prediction_id: str) -> Response:
    prediction = services().prediction(prediction_id)
    correction = services().store.correction(prediction.id)
    return jsonify(prediction_json(prediction, correction.true_digit if correction else None))


@bp.delete("/predictions/<prediction_id>")
@private
def delete_prediction(prediction_id: str) -> tuple[str, int]:
    """Removes the prediction, its image and every row that refers to it."""
    services().store.delete(parse_prediction_id(prediction_id))
    return "", 204


@bp.get("/predictions/<prediction_id>/image")
@private
def prediction_image(prediction_id: str) -> Response:
    """The original bytes as uploaded, with the type sniffed from them."""
    prediction = services().prediction(prediction_id)
    return Response(prediction.image, content_type=prediction.content_type)


@bp.get("/predictions/<prediction_id>/input.png")
@private
def prediction_input(prediction_id: str) -> Response:
    """The 28x28 image the model saw."""
    return Response(services().prediction(prediction_id).model_input_png, content_type="image/png")


@bp.post("/predictions/<prediction_id>/correction")
@private
def correct_prediction(prediction_id: str) -> tuple[Response, int]:
    body = parsed_json(request)
    digit = body.get("digit") if isinstance(body, dict) else None
    # bool is an int in Python; true is not a digit.
    if type(digit) is not int or digit not in DIGITS:
        raise ApiError(400, "bad_digit", 'Send JSON {"digit": n} with n a whole number 0-9.')
    correction = services().store.save_correction(parse_prediction_id(prediction_id), digit)
    return jsonify(
        prediction_id=str(correction.prediction_id),
        true_digit=correction.true_digit,
        predicted_digit=correction.predicted_digit,
        corrected_at=_iso(correction.corrected_at),
    ), 201


def model_version_json(version: ModelVersion, active: bool) -> dict[str, Any]:
    """A registered model version: its figures, its card, and whether it is active."""
    return {
        "version": version.version,
        "active": active,
        "created_at": _iso(version.created_at),
        "parent": version.parent,
        "trained_on": version.trained_on,
        "test_accuracy": version.test_accuracy,
        "litert_sha256": version.litert_sha256,
        "litert_size": version.litert_size,
        "has_weights": version.weights_sha256 is not None,
        # A retrained candidate against the version active when it was made (its card's).
        "comparison": version.card.get("comparison"),
        "card": version.card,
    }


def _activation_json(activation: Activation) -> dict[str, Any]:
    return {
        "version": activation.version,
        "action": activation.action,
        "rollback_to": activation.rollback_to,
        "activated_at": _iso(activation.activated_at),
    }


@bp.get("/models")
def list_models() -> Response:
    """The registered model versions, the active one, and the changes of it, newest first.
    Promote and rollback are operator commands (``scripts/run.sh``), not routes."""
    registry = services().registry
    active = registry.active()
    active_version = active.version if active is not None else None
    return jsonify(
        active=active_version,
        serving=services().classifier.version,
        versions=[model_version_json(v, v.version == active_version) for v in registry.versions()],
        history=[_activation_json(a) for a in registry.history()],
    )


@cache
def _openapi() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("openapi.json").read_text())


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(_openapi())
