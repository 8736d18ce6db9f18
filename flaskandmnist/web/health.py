"""Liveness, readiness and metrics for orchestrators and monitoring."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from flaskandmnist import metrics as service_metrics

from .services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and answering."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Whether to send predictions here: the model is loaded (it is, once the app exists)
    and each one will be stored.

    - 200 ``ready``: Cassandra answers;
    - 200 ``degraded``: Cassandra does not, but predictions are answered and queued in the
      outbox (``outbox_depth`` of them wait in this worker). Still ready: every replica
      shares the one Cassandra, so taking them out of rotation would turn a storage
      outage into a full one; alert on the depth instead. Reads of stored predictions
      (history, records by id) answer 503 meanwhile;
    - 503 ``unavailable``: neither Cassandra nor the outbox can take a prediction.
    """
    health = services().recorder.health()
    status, code = (
        ("ready", 200)
        if health.cassandra == "ok"
        else ("degraded", 200)
        if health.accepting
        else ("unavailable", 503)
    )
    body = {"status": status, "model": services().classifier.version, "cassandra": health.cassandra}
    if health.outbox_depth is not None:
        body["outbox_depth"] = health.outbox_depth
    return jsonify(body), code


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of every worker, in the text exposition format."""
    body, content_type = service_metrics.exposition(services().settings.metrics.multiproc_dir)
    return Response(body, content_type=content_type)
