"""Prometheus metrics of the service: requests, latencies, predictions, Cassandra writes and
the outbox.

Under gunicorn every worker is a process of its own: prometheus_client then keeps each
process's values in files in ``PROMETHEUS_MULTIPROC_DIR``, which gunicorn_conf sets before a
worker imports this module, and :func:`exposition` adds up the files of all workers. Without
it (one process, e.g. Flask's test client) the values live in the default registry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from flaskandmnist.domain import Prediction

#: The route label of a request no rule matched (404, 405): unknown paths must not each
#: become a time series.
UNMATCHED = "unmatched"
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "flaskandmnist_http_requests",
    "HTTP requests answered, by method, route (the URL rule) and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "flaskandmnist_http_request_duration_seconds",
    "Time from a request's arrival in Flask to its answer, by method and route.",
    ["method", "route"],
)
PREDICTIONS = Counter(
    "flaskandmnist_predictions",
    "Predictions answered (stored in Cassandra or queued in the outbox), by answer: the "
    "digit, or not_a_digit.",
    ["digit"],
)
CASSANDRA_WRITE_SECONDS = Histogram(
    "flaskandmnist_cassandra_write_duration_seconds",
    "Time Cassandra took to store a group of predictions that it stored; path 'request' "
    "is before the answer, 'replay' is from the outbox.",
    ["path"],
    buckets=_WRITE_BUCKETS,
)
CASSANDRA_WRITE_FAILURES = Counter(
    "flaskandmnist_cassandra_write_failures",
    "Groups of predictions Cassandra did not store (error or write deadline), by path.",
    ["path"],
)
OUTBOX_DEPTH = Gauge(
    "flaskandmnist_outbox_depth",
    "Predictions waiting in the outbox for Cassandra (all live workers).",
    multiprocess_mode="livesum",
)
OUTBOX_QUEUED = Counter(
    "flaskandmnist_outbox_queued",
    "Predictions appended to the outbox because Cassandra did not store them in time.",
)
OUTBOX_REPLAYED = Counter(
    "flaskandmnist_outbox_replayed",
    "Predictions replayed from the outbox into Cassandra.",
)


def count_predictions(predictions: Sequence[Prediction]) -> None:
    for prediction in predictions:
        PREDICTIONS.labels("not_a_digit" if prediction.not_a_digit else str(prediction.digit)).inc()


def init_app(app: Flask) -> None:
    """Counts and times every request of ``app``."""
    app.before_request(_start)
    app.after_request(_observe)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else UNMATCHED
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    # Missing when an earlier before_request hook refused the request (e.g. CSRF).
    if (started := g.get("metrics_started")) is not None:
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def exposition(multiproc_dir: Path | None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type: of all the processes
    writing to ``multiproc_dir``, or of this one when it is None."""
    registry = REGISTRY
    if multiproc_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiproc_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST
