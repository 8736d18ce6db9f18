"""Model versions in the web app: /api/v1/models, the Models page, /readyz, and a worker
switching to a promoted version without a restart (flaskandmnist/active_model.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from support import wait_until

from flaskandmnist.classifier import Classifier
from flaskandmnist.web.services import services


def test_the_shipped_model_registers_itself_and_is_active(
    client: FlaskClient, classifier: Classifier
) -> None:
    body = client.get("/api/v1/models").get_json()

    assert body["active"] == body["serving"] == classifier.version
    [version] = body["versions"]
    assert version["version"] == classifier.version and version["active"] is True
    assert version["test_accuracy"] == classifier.card["test_accuracy"]
    assert version["litert_sha256"] == classifier.card["litert_sha256"]
    assert version["card"] == classifier.card
    assert [a["action"] for a in body["history"]] == ["registered"]


def test_the_models_page_lists_the_versions_and_marks_the_active_one(
    client: FlaskClient, classifier: Classifier
) -> None:
    page = client.get("/models")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'class="is-active" aria-current="true" data-version="{classifier.version}"' in html
    assert f"{classifier.card['test_accuracy']:.2%}" in html


def test_promote_and_rollback_are_not_routes(client: FlaskClient, app: Flask) -> None:
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert not any("promote" in rule or "rollback" in rule for rule in rules)
    assert client.post("/api/v1/models").status_code == 405


def predicted_version(client: FlaskClient, png: bytes) -> str:
    response = client.post("/api/v1/predictions", data=png, content_type="image/png")
    assert response.status_code == 201
    return response.get_json()["model_version"]


def test_a_promoted_version_is_served_without_a_restart_and_recorded(
    make_app: Callable[..., Flask], classifier: Classifier, digit_pngs: dict[int, bytes]
) -> None:
    app = make_app()
    client = app.test_client()
    with app.app_context():
        registry = services().registry
    card: dict[str, Any] = {**classifier.card, "model_version": "v2-same-weights"}
    registry.register(card, classifier.litert, parent=classifier.version)

    registry.promote("v2-same-weights")

    wait_until(
        lambda: predicted_version(client, digit_pngs[7]) == "v2-same-weights",
        timeout=30,
        what="the worker serves the promoted version",
    )
    assert client.get("/readyz").get_json()["model"] == "v2-same-weights"
    created = client.post("/api/v1/predictions", data=digit_pngs[3], content_type="image/png")
    stored = client.get(created.get_json()["url"]).get_json()
    assert stored["model_version"] == "v2-same-weights"

    registry.rollback()

    wait_until(
        lambda: predicted_version(client, digit_pngs[7]) == classifier.version,
        timeout=30,
        what="the worker serves the version before",
    )


def test_a_worker_keeps_its_model_when_the_promoted_file_is_damaged(
    make_app: Callable[..., Flask], classifier: Classifier, digit_pngs: dict[int, bytes]
) -> None:
    app = make_app()
    client = app.test_client()
    with app.app_context():
        registry, session = services().registry, services().store.session
    registry.register({**classifier.card, "model_version": "damaged"}, classifier.litert)
    session.execute(
        f"UPDATE {registry.keyspace}.model_chunks SET data = %s WHERE version = %s AND chunk = 0",
        (b"not a model", "damaged"),
    )

    registry.promote("damaged")
    with app.app_context():
        services().model.sync()  # what the poller does

    assert predicted_version(client, digit_pngs[7]) == classifier.version
    assert client.get("/readyz").get_json()["model"] == classifier.version


def test_a_retrained_candidate_shows_its_comparison_and_changed_answers(
    make_app: Callable[..., Flask], classifier: Classifier, digit_pngs: dict[int, bytes]
) -> None:
    app = make_app()
    client = app.test_client()
    posted = client.post("/api/v1/predictions", data=digit_pngs[7], content_type="image/png")
    changed_id = posted.get_json()["id"]
    comparison = {
        "against": classifier.version,
        "mnist_test_accuracy": {"candidate": 0.9941, "active": 0.9942},
        "held_out_corrections": {"count": 40, "candidate": 0.925, "active": 0.6},
        "replay": {
            "count": 10,
            "agreement": 0.9,
            "changed_count": 1,
            "changed": [{"id": changed_id, "old": 7, "new": None}],
        },
    }
    card = {**classifier.card, "model_version": "retrained", "comparison": comparison}
    with app.app_context():
        services().registry.register(card, classifier.litert, parent=classifier.version)

    [listed] = [v for v in client.get("/api/v1/models").get_json()["versions"] if v["comparison"]]
    assert listed["version"] == "retrained" and listed["comparison"] == comparison

    html = client.get("/models").get_data(as_text=True)
    assert 'data-comparison="retrained"' in html
    assert "92.50%" in html and "60.00%" in html and "1 would change" in html
    thumbnail = f"/api/v1/predictions/{changed_id}/input.png"
    assert f'src="{thumbnail}"' in html and "7 &rarr; not a digit" in html
    assert client.get(thumbnail).status_code == 200
