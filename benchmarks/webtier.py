"""Where a prediction's time goes inside one worker: the web tier against the real work.

Posts one workload's body (``benchmarks/bodies.py``) to ``/api/v1/predictions`` through
Flask's test client, with persistence off as in ``benchmarks/ceiling.py`` (the Cassandra
write is measured by ``benchmarks/load.py``), and prints:

- the time per request of the full app, of the app with one layer switched off (the rate
  limiter, the metrics hooks), and of a bare Flask app answering the same post with a
  constant, the floor of Flask itself;
- a profile of the full app split by layer: image pipeline, model, rate limiter, metrics,
  CSRF, security headers, reading the upload, building the JSON answer, and the rest;
- the rate limiter's count of one post at a person's pace (one every 12 ms or slower),
  alone and beside a busy thread (another request), with limits' ``memory://`` storage and
  with the worker's (``flaskandmnist/web/rate_counts.py``).

    MNIST_DIR=../shared/data/mnist .venv/bin/python -m benchmarks.webtier --workload canvas

gunicorn's own cost (HTTP parsing, the gthread pool) is not in these figures: wrk against
a bare app under the same gunicorn measures it (``benchmarks/load.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

#: Profile entries (file name ending, function name) whose cumulative time is each layer's.
LAYERS: dict[str, list[tuple[str, str]]] = {
    "image pipeline": [("flaskandmnist/recognition.py", "_prepare")],
    "model": [("flaskandmnist/batching.py", "__call__")],
    "rate limiter": [
        ("flask_limiter/_extension.py", "_check_request_limit"),
        ("flask_limiter/_extension.py", "__inject_headers"),
    ],
    "metrics": [("flaskandmnist/metrics.py", "_start"), ("flaskandmnist/metrics.py", "_observe")],
    "CSRF": [("flask_wtf/csrf.py", "csrf_protect")],
    "security headers": [("flaskandmnist/web/security.py", "_headers")],
    "reading the upload": [
        ("flaskandmnist/web/uploads.py", "reject_unnamed_fields"),
        ("flaskandmnist/web/uploads.py", "uploads_from"),
    ],
    "JSON answer": [("flaskandmnist/web/api.py", "_created")],
}


def per_request_ms(client: FlaskClient, body: bytes, content_type: str, count: int) -> float:
    """Median milliseconds of ``count`` posts, after a warm-up."""
    times = []
    for _ in range(count + 50):
        started = time.perf_counter()
        response = client.post("/api/v1/predictions", data=body, content_type=content_type)
        times.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise SystemExit(f"answered {response.status_code}: {response.get_data(as_text=True)}")
    return statistics.median(times[50:]) * 1000


def bare_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/predictions")
    def create() -> tuple[dict[str, int], int]:
        return {"digit": 7}, 201

    return app


def service_app(*, rate_limit: bool = True, metrics: bool = True) -> Flask:
    """The service without persistence (benchmarks/ceiling.py), layers switched off here
    for the measurement only."""
    from benchmarks import ceiling
    from flaskandmnist import metrics as service_metrics
    from flaskandmnist.config import Settings

    env = {**os.environ, "RATE_LIMIT": "100000/second" if rate_limit else "off"}
    original = service_metrics.init_app
    if not metrics:
        service_metrics.init_app = lambda app: None  # type: ignore[assignment]
    try:
        return ceiling.create_app(Settings.from_env(env))
    finally:
        service_metrics.init_app = original


def limiter_hit_us(uri: str, busy: bool, count: int = 300) -> tuple[float, float]:
    """p50 and p99 microseconds of a rate limiter count, one every 12 ms."""
    counts = storage_from_string(uri)
    limiter = SlidingWindowCounterRateLimiter(counts)
    item = parse("100000/second")
    stop = threading.Event()

    def spin() -> None:  # holds the GIL whenever it can, as a request's Python code does
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    if busy:
        spinner.start()
    times = []
    try:
        for _ in range(count):
            time.sleep(0.012)
            started = time.perf_counter()
            limiter.hit(item, "client")
            times.append(time.perf_counter() - started)
    finally:
        stop.set()
        if busy:
            spinner.join()
    percentiles = statistics.quantiles(times, n=100)
    return percentiles[49] * 1e6, percentiles[98] * 1e6


def layer_ms(stats: pstats.Stats, entries: list[tuple[str, str]], requests: int) -> float:
    total = 0.0
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if any(filename.endswith(f) and function == name for f, name in entries):
            total += row[3]  # cumulative seconds
    return total / requests * 1000


def main() -> None:
    from benchmarks.load import request_body

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload", default="canvas", choices=["canvas", "photo", "scan", "mnist28"]
    )
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    # Persistence is off, but the app still connects: to nothing, on loopback.
    os.environ |= {
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": "9",
        "OUTBOX_DIR": tempfile.mkdtemp(prefix="webtier-outbox-"),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="webtier-metrics-"),
    }
    body = request_body(args.workload, 0)
    variants: dict[str, Callable[[], Flask]] = {
        "full app": service_app,
        "without the rate limiter": lambda: service_app(rate_limit=False),
        "without the metrics hooks": lambda: service_app(metrics=False),
        "bare Flask, constant answer": bare_app,
    }
    figures: dict[str, float] = {}
    print(f"workload {args.workload}: {len(body.data)} bytes, {args.requests} requests each")
    for name, make in variants.items():
        client = make().test_client()
        figures[name] = per_request_ms(client, body.data, body.content_type, args.requests)
        print(f"  {name:32s} {figures[name]:7.2f} ms per request (median)")

    client = service_app().test_client()
    profile = cProfile.Profile()
    profile.enable()
    per_request_ms(client, body.data, body.content_type, args.requests)
    profile.disable()
    stats = pstats.Stats(profile)
    total = sum(row[2] for row in stats.stats.values()) / (args.requests + 50) * 1000  # type: ignore[attr-defined]
    print(f"profile of the full app ({total:.2f} ms per request with the profiler's overhead):")
    shares = {
        name: layer_ms(stats, entries, args.requests + 50) for name, entries in LAYERS.items()
    }
    shares["the rest (Flask, werkzeug, test client)"] = total - sum(shares.values())
    for name, ms in shares.items():
        print(f"  {name:40s} {ms:6.2f} ms  {ms / total:6.1%}")

    from flaskandmnist.web import rate_counts

    hits: dict[str, list[float]] = {}
    print("rate limiter, one count every 12 ms: p50 / p99 microseconds")
    for uri in ("memory://", rate_counts.URI):
        for busy in (False, True):
            name = f"{uri} {'beside a busy thread' if busy else 'alone'}"
            hits[name] = list(limiter_hit_us(uri, busy))
            print(f"  {name:45s} {hits[name][0]:9.1f} / {hits[name][1]:9.1f}")
    print(
        json.dumps(
            {
                "workload": args.workload,
                "median_ms": figures,
                "profile_ms": shares,
                "limiter_hit_us": hits,
            }
        )
    )


if __name__ == "__main__":
    main()
