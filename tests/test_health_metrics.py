"""/healthz, /readyz (ready, degraded, unavailable) and the Prometheus /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families
from support import REPO_ROOT

from flaskandmnist.classifier import Classifier
from flaskandmnist.config import CassandraSettings, OutboxSettings, Settings, WebSettings
from flaskandmnist.metrics import exposition
from flaskandmnist.web import close_app, create_app

PREDICT = "/api/v1/predictions"
#: A port nothing listens on: Cassandra refuses every connection.
DOWN = CassandraSettings(port=1, connect_timeout_s=1.0)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return samples(response.get_data(as_text=True))


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def degraded_app(classifier: Classifier, tmp_path: Path) -> Iterator[Flask]:
    """An app whose Cassandra is down, with its outbox in a temporary folder."""
    settings = Settings(
        cassandra=DOWN,
        outbox=OutboxSettings(directory=tmp_path),
        web=WebSettings(secret_key="test"),
    )
    app = create_app(settings, classifier=classifier)
    yield app
    close_app(app)


def test_healthz_says_the_process_is_alive(degraded_app: Flask) -> None:
    response = degraded_app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


@pytest.mark.cassandra
def test_ready_when_the_model_is_loaded_and_cassandra_answers(
    client: FlaskClient, classifier: Classifier
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "model": classifier.version,
        "cassandra": "ok",
        "outbox_depth": 0,
    }


def test_degraded_still_answers_predictions_and_reports_the_queue(
    degraded_app: Flask, digit_pngs: dict[int, bytes]
) -> None:
    client = degraded_app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert (body["status"], body["outbox_depth"]) == ("degraded", 0)
    assert body["cassandra"].startswith("not connected")  # why, for the operator
    depth_before = value(scrape(client), "flaskandmnist_outbox_depth")

    created = [
        client.post(PREDICT, data=digit_pngs[digit], content_type="image/png") for digit in (2, 6)
    ]
    assert [r.status_code for r in created] == [201, 201]
    assert [r.get_json()["digit"] for r in created] == [2, 6]

    ready = client.get("/readyz").get_json()
    assert (ready["status"], ready["outbox_depth"]) == ("degraded", 2)
    assert value(scrape(client), "flaskandmnist_outbox_depth") == depth_before + 2
    # Reading needs Cassandra: a queued record is not found until it is replayed.
    assert client.get(created[0].headers["Location"]).status_code == 503


def test_unavailable_when_neither_cassandra_nor_the_outbox_can_store(
    classifier: Classifier, tmp_path: Path, digit_pngs: dict[int, bytes]
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    for outbox in (OutboxSettings(directory=not_a_folder), OutboxSettings(enabled=False)):
        settings = Settings(cassandra=DOWN, outbox=outbox, web=WebSettings(secret_key="test"))
        app = create_app(settings, classifier=classifier)
        try:
            client = app.test_client()
            ready = client.get("/readyz")
            assert (ready.status_code, ready.get_json()["status"]) == (503, "unavailable")
            # Never a 201 for a record that is neither in Cassandra nor on disk.
            response = client.post(PREDICT, data=digit_pngs[4], content_type="image/png")
            assert response.status_code == 503
            assert response.get_json()["error"]["code"] == "storage_unavailable"
            assert response.headers["Retry-After"].isdigit()
        finally:
            close_app(app)


@pytest.mark.cassandra
def test_metrics_count_requests_by_route_and_status_time_them_and_count_digits(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    before = scrape(client)
    ids = [
        client.post(PREDICT, data=digit_pngs[digit], content_type="image/png").get_json()["id"]
        for digit in (7, 7, 1)
    ]
    assert client.get(f"{PREDICT}/{ids[0]}").status_code == 200
    assert client.get(f"{PREDICT}/{uuid.uuid1()}").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "flaskandmnist_http_requests_total"
    by_id = f"{PREDICT}/<prediction_id>"
    assert grew(requests, method="POST", route=PREDICT, status="201") == 3
    assert grew(requests, method="GET", route=by_id, status="200") == 1
    assert grew(requests, method="GET", route=by_id, status="404") == 1
    # Unknown paths share one label, so that scanners cannot create time series.
    assert grew(requests, method="GET", route="unmatched", status="404") == 1

    latency = "flaskandmnist_http_request_duration_seconds"
    assert grew(f"{latency}_count", method="POST", route=PREDICT) == 3
    assert grew(f"{latency}_sum", method="POST", route=PREDICT) > 0
    assert grew(f"{latency}_bucket", method="POST", route=PREDICT, le="+Inf") == 3

    assert grew("flaskandmnist_predictions_total", digit="7") == 2
    assert grew("flaskandmnist_predictions_total", digit="1") == 1
    writes = "flaskandmnist_cassandra_write_duration_seconds"
    assert grew(f"{writes}_count", path="request") == 3  # one group per request
    assert grew("flaskandmnist_cassandra_write_failures_total", path="request") == 0
    assert grew("flaskandmnist_outbox_queued_total") == 0


_WORKER = """
import sys
from flaskandmnist import metrics
metrics.PREDICTIONS.labels("4").inc()
metrics.OUTBOX_DEPTH.inc(int(sys.argv[1]))
"""


def test_metrics_of_all_workers_are_added_up_and_a_dead_workers_queue_is_dropped(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(depth)], cwd=REPO_ROOT, env=env)
        for depth in (3, 5)
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]

    body, content_type = exposition(tmp_path)
    assert content_type.startswith("text/plain")
    scraped = samples(body.decode())
    assert value(scraped, "flaskandmnist_predictions_total", digit="4") == 2
    assert value(scraped, "flaskandmnist_outbox_depth") == 8

    # What gunicorn_conf's child_exit does: a dead worker's queue is counted by whoever
    # adopts its file, so its gauge goes; its counters stay.
    mark_process_dead(workers[0].pid, str(tmp_path))
    scraped = samples(exposition(tmp_path)[0].decode())
    assert value(scraped, "flaskandmnist_outbox_depth") == 5
    assert value(scraped, "flaskandmnist_predictions_total", digit="4") == 2
