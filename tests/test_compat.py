"""The seeds' clients keep working: their routes answer as those clients expect, and store
every prediction like the API does."""

from __future__ import annotations

import base64
import io
import uuid

import pytest
from flask.testing import FlaskClient
from PIL import Image

from flaskandmnist.storage import PredictionStore

pytestmark = pytest.mark.cassandra


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def truncated_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), 255).save(out, format="PNG")
    return out.getvalue()[:60]


def test_upload_form_gets_an_html_result_page(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    # Numberfigure's upload form: multipart field `file`.
    response = client.post(
        "/upload",
        data={"file": (io.BytesIO(digit_pngs[2]), "two.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    page = response.get_data(as_text=True)
    assert "two.png" in page or ">2<" in page.replace(" ", "")


def test_upload_of_a_non_image_is_an_html_error_page(client: FlaskClient) -> None:
    response = client.post(
        "/upload",
        data={"file": (io.BytesIO(b"plain text"), "notes.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 415
    assert response.content_type.startswith("text/html")
    assert "not an image" in response.get_data(as_text=True)


def test_drawboard_upload3_gets_status_and_digit(
    client: FlaskClient, digit_pngs: dict[int, bytes], app_store: PredictionStore
) -> None:
    # Numberfigure's drawboard posts `<any name>=<data URI>`, form-encoded.
    response = client.post("/upload3", data={"img": data_uri(digit_pngs[8])})
    assert response.status_code == 200
    assert response.get_json() == {"status": "success", "data": "8"}
    newest = app_store.latest(1)[0]
    assert (newest.digit, newest.source) == (8, "legacy")


def test_react_client_gets_the_digit_as_plain_text(
    client: FlaskClient, digit_pngs: dict[int, bytes]
) -> None:
    response = client.post("/api/predict", json={"image": data_uri(digit_pngs[9])})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert response.get_data(as_text=True) == "9"


def test_jquery_client_gets_its_guess(
    client: FlaskClient, digit_pngs: dict[int, bytes], app_store: PredictionStore
) -> None:
    response = client.post("/", data={"imageBase64": data_uri(digit_pngs[0])})
    assert response.status_code == 200
    body = response.get_json()
    assert body["guess"] == 0
    assert app_store.get(uuid.UUID(body["id"])).digit == 0


@pytest.mark.parametrize(
    ("url", "kwargs", "status", "code"),
    [
        ("/upload3", {"data": {}}, 400, "missing_image"),
        ("/upload3", {"data": {"img": "data:image/png;base64,@@@"}}, 400, "bad_base64"),
        ("/api/predict", {"json": {"picture": "x"}}, 400, "missing_image"),
        ("/api/predict", {"json": {"image": data_uri(truncated_png())}}, 422, "unreadable_image"),
        ("/", {"data": {"other": "x"}}, 400, "missing_image"),
        ("/", {"data": {"imageBase64": data_uri(b"\x89PNG")}}, 415, "not_an_image"),
    ],
)
def test_program_clients_get_json_errors(
    client: FlaskClient, url: str, kwargs: dict, status: int, code: str
) -> None:
    response = client.post(url, **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_bad_data_uri_error_names_the_field_the_client_used(client: FlaskClient) -> None:
    response = client.post("/upload3", data={"img": "data:image/png;base64,%%%"})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "'img' is not valid base64."


def test_seed_routes_are_labelled_as_such_in_the_history(
    client: FlaskClient, digit_pngs: dict[int, bytes], app_store: PredictionStore
) -> None:
    assert client.post("/", data={"imageBase64": data_uri(digit_pngs[2])}).status_code == 200
    newest = app_store.latest(1)[0]
    assert newest.source == "legacy"
    page = client.get(f"/predictions/{newest.id}").get_data(as_text=True)
    assert "<dd>Legacy API</dd>" in page
