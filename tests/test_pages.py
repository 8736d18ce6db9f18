"""The HTML pages through Flask's test client, on a fresh keyspace of the real Cassandra:
home, history (paging, digit and day filters), the detail page, corrections with CSRF."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sample_predictions import make_prediction
from werkzeug.test import TestResponse

from flaskandmnist.domain import Prediction
from flaskandmnist.mnist import Mnist
from flaskandmnist.storage import PredictionStore
from flaskandmnist.web.services import services

pytestmark = pytest.mark.cassandra

PAGE_SIZE = 3
# What the Content-Security-Policy (no inline script or style) would block.
_INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style", re.I
)
_DETAIL_LINK = re.compile(r'href="/predictions/([0-9a-f-]{36})"')


@pytest.fixture(scope="module")
def pages_app(make_app: Callable[..., Flask]) -> Flask:
    """An app of its own (an empty keyspace, so listings hold only this module's rows)."""
    return make_app(page_size=PAGE_SIZE)


@pytest.fixture(scope="module")
def store(pages_app: Flask) -> PredictionStore:
    with pages_app.app_context():
        return services().store


@pytest.fixture(scope="module")
def stored(store: PredictionStore) -> list[Prediction]:
    """Five predictions a second apart, oldest first: digits 1, 7, 1, 3, 1."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    predictions = [
        make_prediction(digit, created_at=start + timedelta(seconds=i), seed=i)
        for i, digit in enumerate([1, 7, 1, 3, 1])
    ]
    for prediction in predictions:
        store.save(prediction)
    return predictions


@pytest.fixture
def client(pages_app: Flask) -> FlaskClient:
    return pages_app.test_client()


def html(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def listed(page: str) -> list[uuid.UUID]:
    return [uuid.UUID(found) for found in _DETAIL_LINK.findall(page)]


def link(page: str, text: str) -> str:
    """The href of the link whose text contains ``text``."""
    found = re.search(rf'href="([^"]+)"[^>]*>[^<]*{re.escape(text)}', page)
    assert found, f"no link {text!r}"
    return found.group(1).replace("&amp;", "&")


def pressed_digits(page: str) -> list[str]:
    """The digits whose correction buttons show as chosen."""
    return re.findall(r'value="(\d)"\s*aria-pressed="true"', page)


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def corrections_of(store: PredictionStore, prediction: Prediction) -> list[int]:
    """The true digits stored for ``prediction``."""
    return [
        c.true_digit for c in store.corrections(prediction.day) if c.prediction_id == prediction.id
    ]


def assert_csp_clean(page: str) -> None:
    assert not _INLINE.search(page), _INLINE.search(page)


def test_home_offers_drawing_and_uploading(client: FlaskClient) -> None:
    response = client.get("/")
    page = html(response)
    assert response.status_code == 200
    assert "data-pad" in page and "<canvas" in page
    assert 'data-predictions-url="/api/v1/predictions"' in page
    # Without script the upload form posts to /upload, with a CSRF token.
    form = re.search(r"<form[^>]*data-upload[^>]*>", page)
    assert form
    assert 'action="/upload"' in form.group(0)
    assert 'enctype="multipart/form-data"' in form.group(0)
    assert 'type="file" name="file"' in page
    csrf_token(page)
    assert '<script type="module" src="/static/home.js">' in page
    assert '<a href="/api/docs">API</a>' in page
    assert_csp_clean(page)


def test_api_docs_page_renders_the_openapi_document_with_packaged_swagger_ui(
    client: FlaskClient,
) -> None:
    response = client.get("/api/docs")
    page = html(response)
    assert response.status_code == 200
    assert 'data-openapi="/api/v1/openapi.json"' in page
    assert '<a href="/api/docs" aria-current="page">API</a>' in page
    assert_csp_clean(page)
    assert '<script defer src="/static/api-docs.js">' in page
    assert client.get("/static/api-docs.js").status_code == 200
    for name, kind, content in (
        ("swagger-ui-bundle.js", "javascript", b"SwaggerUIBundle"),
        ("swagger-ui.css", "text/css", b".swagger-ui"),
    ):
        assert f"/api/docs/assets/{name}" in page
        asset = client.get(f"/api/docs/assets/{name}")
        assert asset.status_code == 200
        assert kind in asset.content_type
        assert content in asset.data
        # Served from this origin, under the same policy as every page.
        assert asset.headers["Content-Security-Policy"].startswith("default-src 'self'")


@pytest.mark.parametrize(
    "name", ["oauth2-redirect.html", "swagger-ui.js", "..%2F__init__.py", "%2Fetc%2Fpasswd"]
)
def test_api_docs_serve_only_the_assets_the_page_loads(client: FlaskClient, name: str) -> None:
    assert client.get(f"/api/docs/assets/{name}").status_code == 404


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.css", "text/css"),
        ("app.js", "javascript"),
        ("home.js", "javascript"),
        ("canvas.js", "javascript"),
        ("upload.js", "javascript"),
        ("result.js", "javascript"),
        ("api.js", "javascript"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_are_served_with_their_types(
    client: FlaskClient, name: str, kind: str
) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    # Browsers run module scripts only when served with a JavaScript type.
    assert kind in response.content_type
    response.close()


def test_history_pages_newest_first(client: FlaskClient, stored: list[Prediction]) -> None:
    newest_first = [p.id for p in reversed(stored)]
    first = html(client.get("/history"))
    assert listed(first) == newest_first[:PAGE_SIZE]
    assert "data:image/png;base64," in first  # thumbnails inline: one request per page
    assert "Newest" not in first
    assert_csp_clean(first)

    second = html(client.get(link(first, "Older")))
    assert listed(second) == newest_first[PAGE_SIZE:]
    assert "Older" not in second
    assert listed(html(client.get(link(second, "Newest")))) == newest_first[:PAGE_SIZE]


def test_history_filters_by_digit_and_day(client: FlaskClient, stored: list[Prediction]) -> None:
    ones = [p.id for p in reversed(stored) if p.digit == 1]
    page = html(client.get("/history?digit=1"))
    assert listed(page) == ones
    assert re.search(r'aria-current="page">1</a>', page)
    assert "Older" not in page  # exactly one page of them
    assert listed(html(client.get("/history?digit=3"))) == [stored[3].id]
    assert listed(html(client.get("/history?digit=5"))) == []
    assert "No predictions of 5" in html(client.get("/history?digit=5"))

    day = stored[-1].day
    assert listed(html(client.get(f"/history?digit=7&day={day}"))) == [stored[1].id]
    assert listed(html(client.get(f"/history?day={day - timedelta(days=400)}"))) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("digit=x", "&#39;digit&#39; must be a whole number from 0 to 9"),
        ("digit=10", "&#39;digit&#39; must be a whole number from 0 to 9"),
        ("digit=-1", "&#39;digit&#39; must be a whole number from 0 to 9"),
        ("before=yesterday", "&#39;before&#39; must be a prediction id"),
        (f"before={uuid.uuid4()}", "&#39;before&#39; must be a prediction id"),
        ("day=2026-13-01", "&#39;day&#39; must be a date"),
        ("limit=0", "&#39;limit&#39; must be a whole number"),
    ],
)
def test_history_refuses_bad_parameters(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/history?{query}")
    assert response.status_code == 400
    assert message in html(response)
    assert "<title>That request was not understood" in html(response)


def test_detail_page_shows_the_whole_record(client: FlaskClient, stored: list[Prediction]) -> None:
    prediction = stored[1]
    response = client.get(f"/predictions/{prediction.id}")
    page = html(response)
    assert response.status_code == 200
    assert "Recognised as 7" in page
    assert f'src="/api/v1/predictions/{prediction.id}/image"' in page
    assert "data:image/png;base64," in page  # the 28x28 input
    meters = re.findall(r'<meter min="0" max="1" value="([^"]+)"', page)
    assert [float(v) for v in meters] == list(prediction.probabilities)
    assert '<li data-digit="7" class="is-top">' in page
    assert "99.1%" in page
    assert prediction.model_version in page and prediction.filename in page
    assert f'action="/predictions/{prediction.id}/correction"' in page
    csrf_token(page)
    assert_csp_clean(page)


@pytest.mark.parametrize(
    "missing", [str(uuid.uuid1()), str(uuid.uuid4()), "00000000-0000-0000-0000-000000000000"]
)
def test_unknown_prediction_is_a_404_page(client: FlaskClient, missing: str) -> None:
    response = client.get(f"/predictions/{missing}")
    assert response.status_code == 404
    assert "No prediction has the id" in html(response)


def test_correction_form_stores_the_true_digit(client: FlaskClient, store: PredictionStore) -> None:
    prediction = make_prediction(7, seed=11)
    store.save(prediction)
    detail = f"/predictions/{prediction.id}"
    page = html(client.get(detail))
    assert "data-corrected-to" not in page
    token = csrf_token(page)

    response = client.post(f"{detail}/correction", data={"digit": "4", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == detail
    page = html(client.get(detail))
    assert "Thank you: corrected to 4 (the model said 7)." in page
    assert '<dd data-corrected-to="4">Corrected to 4 (the model said 7)</dd>' in page
    assert pressed_digits(page) == ["4"]
    assert "Thank you" not in html(client.get(detail))  # shown once
    assert corrections_of(store, prediction) == [4]
    assert store.correction(prediction.id).true_digit == 4


def test_correction_needs_the_csrf_token(client: FlaskClient, store: PredictionStore) -> None:
    prediction = make_prediction(2, seed=12)
    store.save(prediction)
    client.get(f"/predictions/{prediction.id}")  # a session, but no token sent
    response = client.post(f"/predictions/{prediction.id}/correction", data={"digit": "5"})
    assert response.status_code == 400
    assert "CSRF" in html(response)
    assert corrections_of(store, prediction) == []


@pytest.mark.parametrize("digit", ["", "x", "10", "-1", "4.0", "٤"])
def test_correction_refuses_what_is_not_a_digit(
    client: FlaskClient, stored: list[Prediction], digit: str
) -> None:
    detail = f"/predictions/{stored[0].id}"
    token = csrf_token(html(client.get(detail)))
    response = client.post(f"{detail}/correction", data={"digit": digit, "csrf_token": token})
    assert response.status_code == 400
    assert "Choose the true digit" in html(response)


def test_correction_of_an_unknown_prediction_is_a_404(client: FlaskClient) -> None:
    token = csrf_token(html(client.get("/")))
    for missing in (uuid.uuid1(), uuid.uuid4(), "not-an-id"):
        response = client.post(
            f"/predictions/{missing}/correction", data={"digit": "3", "csrf_token": token}
        )
        assert response.status_code == 404
        # The same words as the page of an unknown id.
        assert f"No prediction has the id {missing}." in html(response)


@pytest.mark.parametrize(
    "path",
    ["/predictions/not-an-id", "/api/v1/predictions/xyz/input.png", "/predictions/" + "x" * 300],
)
def test_malformed_id_gets_our_own_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    text = html(response)
    assert "No prediction has the id " in text
    assert "requested URL was not found" not in text
    assert "x" * 61 not in text  # a long id is cut short


def test_confirming_the_models_digit_says_so(client: FlaskClient, store: PredictionStore) -> None:
    prediction = make_prediction(9, seed=13)
    store.save(prediction)
    detail = f"/predictions/{prediction.id}"
    token = csrf_token(html(client.get(detail)))
    client.post(f"{detail}/correction", data={"digit": "9", "csrf_token": token})
    page = html(client.get(detail))
    assert "Thank you: confirmed as 9." in page
    assert '<dd data-corrected-to="9">Confirmed as 9</dd>' in page
    assert "Corrected" not in page
    assert pressed_digits(page) == ["9"]


def test_history_shows_corrections_and_confirmations(
    client: FlaskClient, store: PredictionStore
) -> None:
    corrected, confirmed = make_prediction(5, seed=14), make_prediction(6, seed=15)
    store.save_many([corrected, confirmed])
    store.save_correction(corrected.id, 3)
    store.save_correction(confirmed.id, 6)
    page = html(client.get("/history?limit=2"))
    assert '<span class="history-correction" data-true-digit="3">Corrected to 3</span>' in page
    assert '<span class="history-correction" data-true-digit="6">Confirmed</span>' in page


def test_day_filter_asks_for_the_days_form_of_the_url(client: FlaskClient) -> None:
    page = html(client.get("/history"))
    field = re.search(r'<input id="day"[^>]*>', page, re.S).group(0)  # type: ignore[union-attr]
    assert 'placeholder="YYYY-MM-DD"' in field
    assert 'type="date"' not in field  # which shows the browser's mm/dd/yyyy


def test_upload_hint_names_the_formats_the_errors_name(client: FlaskClient) -> None:
    page = html(client.get("/"))
    assert "PNG, JPEG, GIF, BMP, WebP, TIFF or PPM, up to" in page
    refused = client.post(
        "/api/v1/predictions", data=b"GIF89 but not really", content_type="image/gif"
    )
    assert "(PNG, JPEG, GIF, BMP, WebP, TIFF or PPM)" in refused.get_json()["error"]["message"]


def test_upload_without_script_answers_with_the_result_page(
    client: FlaskClient, mnist: Mnist
) -> None:
    index = int(np.flatnonzero(mnist.test_labels == 4)[0])
    png = io.BytesIO()
    Image.fromarray(255 - mnist.test_images[index]).save(png, format="PNG")
    token = csrf_token(html(client.get("/")))
    response = client.post(
        "/upload",
        data={"file": (io.BytesIO(png.getvalue()), "four.png"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    page = html(response)
    assert response.status_code == 200
    assert "Recognised as 4" in page
    assert "Stored. This page is the prediction" in page
    assert "four.png" in page
    assert_csp_clean(page)
