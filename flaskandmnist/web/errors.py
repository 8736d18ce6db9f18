"""Every failure becomes a clear answer with the right status: JSON for programs, a page
for people. Bad input is never a 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from flaskandmnist.domain import NOT_A_DIGIT_MESSAGE, UnknownPrediction
from flaskandmnist.imaging import (
    BlankImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
)
from flaskandmnist.storage import StorageError

logger = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when Cassandra is unavailable.
RETRY_AFTER_S = 5
# Endpoints outside the api blueprint whose clients are programs expecting JSON.
_JSON_ENDPOINTS = frozenset({"compat.upload3", "compat.api_predict", "compat.guess"})


class ApiError(Exception):
    """A request the service refuses, with the status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def image_error(error: ImageError) -> ApiError:
    """The answer to an image the pipeline refused."""
    if isinstance(error, ImageTooLargeError):
        return ApiError(413, "image_too_large", str(error))
    if isinstance(error, NotAnImageError):
        return ApiError(415, "not_an_image", str(error))
    if isinstance(error, BlankImageError):
        return ApiError(422, "blank_image", str(error))
    return ApiError(422, "unreadable_image", str(error))


def not_a_digit() -> ApiError:
    """The answer to an image that holds no single digit (its prediction is stored all the
    same)."""
    return ApiError(422, "not_a_digit", NOT_A_DIGIT_MESSAGE)


def _http_error(error: HTTPException) -> ApiError:
    code = (error.name or "error").lower().replace(" ", "_")
    return ApiError(error.code or 500, code, error.description or error.name)


def wants_json() -> bool:
    """Whether the current request comes from a program (JSON) rather than a person."""
    # An unknown URL has no blueprint; under /api/ it is still a program asking.
    return (
        request.blueprint in {"api", "health"}
        or request.endpoint in _JSON_ENDPOINTS
        or request.path.startswith("/api/")
    )


def respond(error: ApiError) -> Response:
    """``error`` as JSON ``{"error": {"code", "message"}}`` or as an HTML error page."""
    if wants_json():
        response = jsonify(error={"code": error.code, "message": error.message})
    else:
        response = Response(
            render_template(
                "error.html", status=error.status, title=error.code, message=error.message
            )
        )
    response.status_code = error.status
    if error.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def register(app: Flask) -> None:
    """Installs the handlers that turn exceptions into answers."""

    @app.errorhandler(ApiError)
    def _api(error: ApiError) -> Response:
        return respond(error)

    @app.errorhandler(ImageError)
    def _image(error: ImageError) -> Response:
        return respond(image_error(error))

    @app.errorhandler(UnknownPrediction)
    def _unknown(error: UnknownPrediction) -> Response:
        return respond(ApiError(404, "not_found", str(error)))

    @app.errorhandler(StorageError)
    def _storage(error: StorageError) -> Response:
        # Already logged by the storage module, with the driver's cause.
        return respond(
            ApiError(
                503,
                "storage_unavailable",
                "The prediction store (Cassandra) is unavailable; please try again shortly.",
            )
        )

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> Response:
        return respond(
            ApiError(400, "csrf_failed", f"{error.description} Reload the page and try again.")
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return respond(_http_error(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return respond(
            ApiError(500, "internal_error", "Something went wrong on our side; it was logged.")
        )
