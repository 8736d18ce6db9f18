"""The JSON API (/api/v1), against the real Cassandra: every route and every error status."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra.util import uuid_from_time
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from PIL import Image

from flaskandmnist.classifier import Classifier
from flaskandmnist.config import CassandraSettings, OutboxSettings, Settings, WebSettings
from flaskandmnist.storage import PredictionStore
from flaskandmnist.web import close_app, create_app
from flaskandmnist.web.security import protected_endpoints

pytestmark = pytest.mark.cassandra

PREDICTION_FIELDS = {
    "id",
    "digit",
    "not_a_digit",
    "sure",
    "confidence",
    "probabilities",
    "model_version",
    "created_at",
    "source",
    "filename",
    "content_type",
    "image_size",
    "true_digit",
    "processing_ms",
    "url",
    "page_url",
    "image_url",
    "input_url",
}


def openapi_path(rule: str) -> str:
    """A Flask URL rule as the OpenAPI document writes the path: ``<x>`` is ``{x}``."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.removeprefix("/api/v1"))


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), 255).save(out, format="PNG")
    return out.getvalue()


def error_of(response: Any) -> str:
    """The error code of a JSON error answer (and checks its shape)."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"].strip()
    return body["error"]["code"]


# --- Creating predictions ------------------------------------------------------------------


def test_raw_png_body_is_recognised_stored_and_answered_201(
    client: FlaskClient, digit_pngs: dict[int, bytes], app_store: PredictionStore
) -> None:
    image = digit_pngs[7]
    response = client.post(
        "/api/v1/predictions?filename=seven.png", data=image, content_type="image/png"
    )

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == PREDICTION_FIELDS
    assert body["digit"] == 7
    assert body["confidence"] == max(body["probabilities"]) > 0.5
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["filename"] == "seven.png"
    assert body["source"] == "api"
    assert body["created_at"].endswith("Z")
    assert response.headers["Location"] == body["url"] == f"/api/v1/predictions/{body['id']}"
    # Stored before the answer: the record is in Cassandra with the exact bytes.
    stored = app_store.get(uuid.UUID(body["id"]))
    assert stored is not None
    assert hashlib.sha256(stored.image).digest() == hashlib.sha256(image).digest()
    assert stored.digit == 7
    assert list(stored.probabilities) == pytest.approx(body["probabilities"])


def test_every_digit_is_recognised_through_the_api(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    for digit, image in digit_pngs.items():
        response = client.post("/api/v1/predictions", data=image, content_type="image/png")
        assert response.status_code == 201
        assert response.get_json()["digit"] == digit


def test_multipart_upload_keeps_a_sanitised_filename_and_the_source(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    response = client.post(
        "/api/v1/predictions",
        data={
            "file": (io.BytesIO(digit_pngs[3]), "../../etc/\u202epasswd.png"),
            "source": "upload",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["digit"] == 3
    assert body["filename"] == "passwd.png"
    assert body["source"] == "upload"


@pytest.mark.parametrize("encode", [data_uri, lambda data: base64.b64encode(data).decode()])
def test_json_with_data_uri_or_plain_base64(
    client: FlaskClient, digit_pngs: dict[int, bytes], encode: Callable[[bytes], str]
) -> None:
    response = client.post(
        "/api/v1/predictions",
        json={"image": encode(digit_pngs[4]), "source": "canvas", "filename": "four"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["digit"], body["source"], body["filename"]) == (4, "canvas", "four")


def test_content_type_is_sniffed_from_the_bytes(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    response = client.post(
        "/api/v1/predictions?filename=x.gif", data=digit_pngs[2], content_type="image/jpeg"
    )
    assert response.status_code == 201
    assert response.get_json()["content_type"] == "image/png"


# --- Reading them back ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def created(app: Flask, digit_pngs: dict[int, bytes]) -> dict[str, Any]:
    """A prediction made through the API for the read tests."""
    response = app.test_client().post(
        "/api/v1/predictions?filename=five.png", data=digit_pngs[5], content_type="image/png"
    )
    assert response.status_code == 201
    return response.get_json()


def test_get_prediction_returns_the_same_record(client: FlaskClient, created: dict) -> None:
    response = client.get(created["url"])
    assert response.status_code == 200
    assert response.get_json() == created


def test_original_image_comes_back_byte_for_byte(
    client: FlaskClient, created: dict, digit_pngs: dict[int, bytes]
) -> None:
    response = client.get(created["image_url"])
    assert response.status_code == 200
    assert response.content_type == "image/png"
    assert response.data == digit_pngs[5]


def test_input_png_is_the_28x28_image_the_model_saw(client: FlaskClient, created: dict) -> None:
    response = client.get(created["input_url"])
    assert response.status_code == 200
    assert response.content_type == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert (image.size, image.mode) == ((28, 28), "L")
    assert np.asarray(image).max() > 200  # ink, white on black as MNIST


@pytest.mark.parametrize("suffix", ["", "/image", "/input.png"])
def test_unknown_prediction_is_404(client: FlaskClient, suffix: str) -> None:
    unknown = uuid_from_time(datetime(2020, 1, 1, tzinfo=UTC))
    response = client.get(f"/api/v1/predictions/{unknown}{suffix}")
    assert response.status_code == 404
    assert error_of(response) == "not_found"


def test_malformed_id_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/predictions/not-a-uuid")
    assert response.status_code == 404
    assert error_of(response) == "not_found"


# --- Listing -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing_client(
    make_app: Callable[..., Flask], digit_pngs: dict[int, bytes]
) -> tuple[FlaskClient, list[dict]]:
    """A client on its own keyspace holding exactly seven predictions (made oldest first)."""
    client = make_app().test_client()
    made = []
    for digit in (1, 2, 1, 3, 1, 4, 5):
        response = client.post(
            "/api/v1/predictions", data=digit_pngs[digit], content_type="image/png"
        )
        assert response.status_code == 201
        made.append(response.get_json())
    return client, made


def test_listing_pages_newest_first_with_next_links(listing_client: tuple) -> None:
    client, made = listing_client
    seen, url = [], "/api/v1/predictions?limit=3"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["predictions"]) <= 3
        seen += body["predictions"]
        url = body["next"]
    assert [p["id"] for p in seen] == [p["id"] for p in reversed(made)]
    # Listing rows are summaries: everything but the probabilities and timing.
    assert set(seen[0]) == PREDICTION_FIELDS - {"probabilities", "processing_ms"}


def test_listing_filters_by_digit_and_day(listing_client: tuple) -> None:
    client, made = listing_client
    ones = [p["id"] for p in reversed(made) if p["digit"] == 1]
    response = client.get("/api/v1/predictions?digit=1&limit=2")
    first = response.get_json()
    assert [p["id"] for p in first["predictions"]] == ones[:2]
    rest = client.get(first["next"]).get_json()
    assert [p["id"] for p in rest["predictions"]] == ones[2:]
    assert rest["next"] is None

    today = made[0]["created_at"][:10]
    assert len(client.get(f"/api/v1/predictions?day={today}").get_json()["predictions"]) == 7
    assert client.get("/api/v1/predictions?day=2001-01-01").get_json() == {
        "predictions": [],
        "next": None,
    }


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "bad_limit"),
        ("limit=101", "bad_limit"),
        ("limit=ten", "bad_limit"),
        ("digit=10", "bad_digit"),
        ("digit=-1", "bad_digit"),
        ("digit=%C2%B2", "bad_digit"),  # a superscript two is not a digit here
        ("before=nope", "bad_before"),
        (f"before={uuid.uuid4()}", "bad_before"),  # not a time-based id
        ("day=21/11/2026", "bad_day"),
    ],
)
def test_bad_listing_parameters_are_400(client: FlaskClient, query: str, code: str) -> None:
    response = client.get(f"/api/v1/predictions?{query}")
    assert response.status_code == 400
    assert error_of(response) == code


# --- Corrections ---------------------------------------------------------------------------


def test_correction_is_stored(
    client: FlaskClient, created: dict, app_store: PredictionStore
) -> None:
    response = client.post(f"{created['url']}/correction", json={"digit": 6})
    assert response.status_code == 201
    body = response.get_json()
    assert body["prediction_id"] == created["id"]
    assert (body["true_digit"], body["predicted_digit"]) == (6, created["digit"])
    day = datetime.fromisoformat(created["created_at"]).date()
    stored = {c.prediction_id: c for c in app_store.corrections(day)}
    assert stored[uuid.UUID(created["id"])].true_digit == 6


@pytest.mark.parametrize("body", [{"digit": 10}, {"digit": "4"}, {"digit": True}, {}, [4], None])
def test_bad_correction_is_400(client: FlaskClient, created: dict, body: object) -> None:
    response = client.post(f"{created['url']}/correction", json=body)
    assert response.status_code == 400
    assert error_of(response) == "bad_digit"


def test_correction_of_unknown_prediction_is_404(client: FlaskClient) -> None:
    unknown = uuid_from_time(datetime(2020, 1, 1, tzinfo=UTC))
    response = client.post(f"/api/v1/predictions/{unknown}/correction", json={"digit": 1})
    assert response.status_code == 404
    assert error_of(response) == "not_found"


# --- Batches -------------------------------------------------------------------------------


def test_batch_of_files_is_answered_per_image(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    files = [(io.BytesIO(digit_pngs[d]), f"{d}.png") for d in (0, 8, 9)]
    response = client.post(
        "/api/v1/predictions/batch", data={"file": files}, content_type="multipart/form-data"
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["stored"], body["refused"]) == (3, 0)
    assert [r["prediction"]["digit"] for r in body["results"]] == [0, 8, 9]
    assert [r["prediction"]["filename"] for r in body["results"]] == ["0.png", "8.png", "9.png"]


def test_batch_with_some_bad_images_is_207(
    client: FlaskClient, digit_pngs: dict[int, bytes], app_store: PredictionStore
) -> None:
    images = [data_uri(digit_pngs[6]), data_uri(b"not an image"), {"image": data_uri(blank_png())}]
    response = client.post("/api/v1/predictions/batch", json={"images": images})
    assert response.status_code == 207
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 415, 422]
    assert [r["error"]["code"] for r in results[1:]] == ["not_an_image", "blank_image"]
    assert app_store.get(uuid.UUID(results[0]["prediction"]["id"])) is not None


def test_batch_where_all_are_refused_takes_their_status(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/predictions/batch", json={"images": [data_uri(b"a"), data_uri(b"b")]}
    )
    assert response.status_code == 415
    assert response.get_json()["stored"] == 0


@pytest.mark.parametrize("body", [{"images": []}, {"images": "x"}, {"image": "x"}])
def test_batch_without_images_is_400(client: FlaskClient, body: dict) -> None:
    response = client.post("/api/v1/predictions/batch", json=body)
    assert response.status_code == 400
    assert error_of(response) == "missing_images"


def test_batch_limit_is_413(make_app: Callable[..., Flask], digit_pngs: dict[int, bytes]) -> None:
    client = make_app(max_batch_images=2).test_client()
    images = [data_uri(digit_pngs[1])] * 3
    response = client.post("/api/v1/predictions/batch", json={"images": images})
    assert response.status_code == 413
    assert error_of(response) == "too_many_images"


# --- Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": b"{not json", "content_type": "application/json"}, 400, "malformed_json"),
        ({"json": ["a list"]}, 400, "malformed_json"),
        ({"json": {"image": 42}}, 400, "missing_image"),
        ({"json": {"image": "data:image/png,abc"}}, 400, "bad_data_uri"),
        ({"json": {"image": "!!!"}}, 400, "bad_base64"),
        ({"json": {"image": "aGk=", "source": "fax"}}, 400, "bad_source"),
        ({"json": {"image": "aGk=", "filename": 3}}, 400, "bad_filename"),
        ({"data": {}, "content_type": "multipart/form-data"}, 400, "missing_file"),
        (
            {"data": {"file": (io.BytesIO(b""), "a.png")}, "content_type": "multipart/form-data"},
            400,
            "empty_file",
        ),
        ({"data": b"", "content_type": "image/png"}, 400, "empty_body"),
        ({"data": b"hello", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": b"hello"}, 415, "unsupported_media_type"),
        ({"data": b"%PDF-1.4 not an image", "content_type": "image/png"}, 415, "not_an_image"),
        ({"data": blank_png(), "content_type": "image/png"}, 422, "blank_image"),
        ({"data": blank_png()[:60], "content_type": "image/png"}, 422, "unreadable_image"),
    ],
)
def test_bad_requests_get_clear_json_errors(
    client: FlaskClient, kwargs: dict, status: int, code: str
) -> None:
    response = client.post("/api/v1/predictions", **kwargs)
    assert response.status_code == status
    assert error_of(response) == code


def test_a_form_field_without_a_name_is_400_everywhere(client: FlaskClient) -> None:
    # A multipart part named "\\" reaches Flask without a name (None); the CSRF check of the
    # pages' forms used to crash on it.
    unknown = uuid_from_time(datetime(2020, 1, 1, tzinfo=UTC))
    for url in ("/api/v1/predictions", f"/predictions/{unknown}/correction", "/upload"):
        response = client.post(url, data={"\\": "x"}, content_type="multipart/form-data")
        assert response.status_code == 400, url
        assert "must have a name" in response.get_data(as_text=True)


def test_two_files_to_the_single_endpoint_is_400(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    files = [(io.BytesIO(digit_pngs[1]), "a.png"), (io.BytesIO(digit_pngs[2]), "b.png")]
    response = client.post(
        "/api/v1/predictions", data={"file": files}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert error_of(response) == "too_many_files"


def test_request_over_the_size_limit_is_413(
    make_app: Callable[..., Flask], digit_pngs: dict[int, bytes]
) -> None:
    client = make_app(max_request_bytes=1000).test_client()
    response = client.post("/api/v1/predictions", data=b"\0" * 5000, content_type="image/png")
    assert response.status_code == 413
    error_of(response)


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    assert client.get("/api/v1/nothing-here").status_code == 404
    response = client.delete("/api/v1/predictions")
    assert response.status_code == 405
    assert error_of(response) == "method_not_allowed"


def test_unreachable_cassandra_is_503_with_retry_after(
    classifier: Classifier, tmp_path: Path
) -> None:
    # A port nothing listens on: the store cannot connect. (Predictions are still answered,
    # from the outbox: tests/test_health_metrics.py; reads cannot be.)
    settings = Settings(
        cassandra=CassandraSettings(port=1, connect_timeout_s=1.0),
        web=WebSettings(secret_key="test"),
        outbox=OutboxSettings(directory=tmp_path),
    )
    app = create_app(settings, classifier=classifier)
    client = app.test_client()
    try:
        for url in (
            "/api/v1/predictions",
            f"/api/v1/predictions/{uuid_from_time(datetime.now(UTC))}",
        ):
            response = client.get(url)
            assert response.status_code == 503
            assert error_of(response) == "storage_unavailable"
            assert response.headers["Retry-After"].isdigit()
    finally:
        close_app(app)


# --- The OpenAPI document ------------------------------------------------------------------


def test_openapi_document_is_valid_and_lists_every_api_route(
    client: FlaskClient, app: Flask
) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    documented = {
        (path, method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    served = {
        (
            openapi_path(rule.rule),
            method,
        )
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == served


def test_openapi_document_names_authentication_and_rate_limits(
    client: FlaskClient, app: Flask
) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = openapi_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            responses = spec["paths"][path][method.lower()]["responses"]
            assert ("401" in responses) == (rule.endpoint in protected_endpoints(app)), path
            assert ("429" in responses) == (method == "POST"), path
