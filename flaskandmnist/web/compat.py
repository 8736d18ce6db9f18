"""The seeds' clients keep working: thin wrappers over the same recognizer and store.

- ``POST /upload``, multipart ``file`` -> the HTML result page (Numberfigure's upload form);
- ``POST /upload3``, form ``<name>=<data URI>`` -> ``{"status": "success", "data": "<digit>"}``
  (Numberfigure's drawboard);
- ``POST /api/predict``, JSON ``{"image": "<data URI>"}`` -> the digit as plain text (a
  React client);
- ``POST /``, form ``imageBase64=<data URI>`` -> ``{"guess": <digit>, ...}`` (a jQuery client).

An image that holds no single digit is stored like any other and answered as each route
answers bad input (422, ``not_a_digit``): an HTML error page for the form, JSON for the
programs, whose clients expect a digit.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from flaskandmnist.domain import Prediction
from flaskandmnist.recognition import Upload

from .errors import not_a_digit
from .services import services
from .uploads import form_data_uri, uploads_from

bp = Blueprint("compat", __name__)


def _digit(upload: Upload) -> Prediction:
    """The stored prediction of an image; raises the route's error when it holds no digit."""
    prediction = services().recognizer.recognise(upload)
    if prediction.not_a_digit:
        raise not_a_digit()
    return prediction


@bp.post("/upload")
def upload() -> str:
    (image,) = uploads_from(request, batch=False, default_source="upload")
    prediction = _digit(image)
    return render_template("prediction.html", prediction=prediction, just_made=True)


@bp.post("/upload3")
def upload3() -> Response:
    prediction = _digit(form_data_uri(request))
    return jsonify(status="success", data=str(prediction.digit))


@bp.post("/api/predict")
def api_predict() -> Response:
    (image,) = uploads_from(request, batch=False, default_source="legacy")
    prediction = _digit(image)
    return Response(str(prediction.digit), content_type="text/plain; charset=utf-8")


@bp.post("/")
def guess() -> Response:
    prediction = _digit(form_data_uri(request, "imageBase64"))
    return jsonify(guess=prediction.digit, confidence=prediction.confidence, id=str(prediction.id))
