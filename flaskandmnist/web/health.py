"""Liveness and readiness for orchestrators (Docker, Kubernetes, load balancers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from flaskandmnist.storage import StorageError

from .services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and answering."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to serve: the model is loaded (it is, once the app exists) and Cassandra
    answers. 503 while it does not, so that traffic goes to another replica."""
    model = services().classifier.version
    try:
        services().store.ping()
    except StorageError as error:
        return jsonify(status="unavailable", model=model, cassandra=str(error)), 503
    return jsonify(status="ready", model=model, cassandra="ok"), 200
