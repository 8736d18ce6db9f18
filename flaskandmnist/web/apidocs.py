"""``/api/docs``: the OpenAPI document (``/api/v1/openapi.json``) rendered by Swagger UI.

Swagger UI's files come from the pinned flask-swagger-ui package, so the page works offline
and needs no CDN. The package's own page starts Swagger UI with an inline script, which the
Content-Security-Policy forbids; this page starts it from a file of ours
(static/api-docs.js) and serves only the two files of the package it loads.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_from_directory

bp = Blueprint("apidocs", __name__, url_prefix="/api/docs")

#: What the page loads of Swagger UI; nothing else of the package's folder is served.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})


def _swagger_ui_dir() -> Path:
    return Path(str(resources.files("flask_swagger_ui").joinpath("dist")))


@bp.get("")
def page() -> str:
    """The API's reference, readable and tryable in the browser."""
    return render_template("api_docs.html")


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return send_from_directory(_swagger_ui_dir(), name)
