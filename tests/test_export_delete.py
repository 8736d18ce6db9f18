"""Export (CSV, ZIP) and delete against the real Cassandra: a day of more rows than a page
of a listing and than a page the driver reads, a delete while a listing or an export runs,
a delete a replayed outbox record cannot undo, and the delete button of the detail page."""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sample_predictions import make_prediction

from flaskandmnist.domain import Prediction
from flaskandmnist.storage import EXPORT_PAGE_ROWS, PredictionStore
from flaskandmnist.web import export
from flaskandmnist.web.params import ExportQuery
from flaskandmnist.web.services import services

pytestmark = pytest.mark.cassandra

#: A day of more predictions than the driver reads per request (and than any listing page).
BIG_DAY = date(2024, 2, 29)
BIG_DAY_ROWS = 2 * EXPORT_PAGE_ROWS + 37


@pytest.fixture(scope="module")
def export_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(page_size=5)


@pytest.fixture(scope="module")
def store(export_app: Flask) -> PredictionStore:
    with export_app.app_context():
        return services().store


@pytest.fixture
def client(export_app: Flask) -> FlaskClient:
    return export_app.test_client()


@pytest.fixture(scope="module")
def big_day(store: PredictionStore) -> list[Prediction]:
    """BIG_DAY_ROWS predictions on BIG_DAY, newest first; every seventh is a 3."""
    start = datetime(2024, 2, 29, 8, tzinfo=UTC)
    made = [
        make_prediction(3 if i % 7 == 0 else 5, created_at=start + timedelta(seconds=i), seed=i)
        for i in range(BIG_DAY_ROWS)
    ]
    for chunk in range(0, len(made), 100):
        store.save_many(made[chunk : chunk + 100])
    return made[::-1]


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_csv_of_a_day_larger_than_a_page(
    client: FlaskClient, store: PredictionStore, big_day: list[Prediction]
) -> None:
    store.save_correction(big_day[1].id, 2)
    store.save_correction(big_day[2].id, big_day[2].digit)
    response = client.get(f"/api/v1/predictions.csv?day={BIG_DAY}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=predictions-{BIG_DAY}.csv"
    )
    rows = csv_rows(response.data)
    assert [row["id"] for row in rows] == [str(p.id) for p in big_day]
    first = rows[1]
    assert list(first) == list(export.COLUMNS)
    assert (first["digit"], first["true_digit"], first["filename"]) == ("5", "2", "digit.png")
    assert first["created_at"] == big_day[1].created_at.isoformat().replace("+00:00", "Z")
    assert rows[2]["true_digit"] == str(big_day[2].digit)
    assert rows[0]["true_digit"] == ""


def test_csv_filters_by_digit(client: FlaskClient, big_day: list[Prediction]) -> None:
    rows = csv_rows(client.get(f"/api/v1/predictions.csv?day={BIG_DAY}&digit=3").data)
    assert [row["id"] for row in rows] == [str(p.id) for p in big_day if p.digit == 3]


def test_zip_holds_every_image_and_the_csv(client: FlaskClient, big_day: list[Prediction]) -> None:
    response = client.get(f"/api/v1/predictions.zip?day={BIG_DAY}")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert archive.testzip() is None
    rows = csv_rows(archive.read("predictions.csv"))
    assert [row["id"] for row in rows] == [str(p.id) for p in big_day]
    for row, prediction in zip(rows[:50], big_day, strict=False):
        assert archive.read(row["image_file"]) == prediction.image
        assert archive.read(row["input_file"]) == prediction.model_input_png
    assert rows[0]["image_file"] == f"images/{big_day[0].id}.png"
    assert len(archive.namelist()) == 2 * len(big_day) + 1


def test_export_of_every_day_and_of_a_day_without_predictions(
    client: FlaskClient, big_day: list[Prediction], store: PredictionStore
) -> None:
    recent = make_prediction(9, seed=4, filename="=SUM(A1:A9).png")
    store.save(recent)
    rows = csv_rows(client.get("/api/v1/predictions.csv").data)
    ids = [row["id"] for row in rows]
    assert ids[0] == str(recent.id)  # newest day first
    assert set(ids) >= {str(p.id) for p in big_day}
    # A client's filename never becomes a spreadsheet formula.
    assert rows[0]["filename"] == "'=SUM(A1:A9).png"

    empty = client.get("/api/v1/predictions.csv?day=2001-01-01")
    assert empty.status_code == 200
    assert csv_rows(empty.data) == []
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/v1/predictions.zip?day=2001-01-01").data))
    assert archive.namelist() == ["predictions.csv"]


@pytest.mark.parametrize(
    ("query", "code"), [("day=yesterday", "bad_day"), ("digit=12", "bad_digit")]
)
def test_bad_export_filters_are_400(client: FlaskClient, query: str, code: str) -> None:
    for kind in ("csv", "zip"):
        response = client.get(f"/api/v1/predictions.{kind}?{query}")
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == code


def test_history_links_to_the_exports_of_its_filter(client: FlaskClient) -> None:
    page = client.get(f"/history?digit=3&day={BIG_DAY}").get_data(as_text=True)
    assert f'href="/api/v1/predictions.csv?digit=3&amp;day={BIG_DAY}"' in page
    assert f'href="/api/v1/predictions.zip?digit=3&amp;day={BIG_DAY}"' in page


# --- Delete --------------------------------------------------------------------------------


def listed_ids(store: PredictionStore, prediction: Prediction) -> dict[str, bool]:
    """Where ``prediction`` still shows: each listing, its correction, its record."""
    day, digit = prediction.day, prediction.digit
    return {
        "record": store.get(prediction.id) is not None,
        "by_day": prediction.id in {s.id for s in store.summaries(day)},
        "by_digit": prediction.id in {s.id for s in store.summaries(day, digit)},
        "correction": prediction.id in store.day_true_digits(day),
    }


def test_delete_removes_every_row_and_every_url(
    client: FlaskClient, store: PredictionStore
) -> None:
    prediction = make_prediction(4, seed=21)
    store.save(prediction)
    store.save_correction(prediction.id, 9)
    assert set(listed_ids(store, prediction).values()) == {True}
    url = f"/api/v1/predictions/{prediction.id}"

    response = client.delete(url)
    assert response.status_code == 204
    assert response.data == b""
    assert set(listed_ids(store, prediction).values()) == {False}
    for suffix in ("", "/image", "/input.png"):
        gone = client.get(url + suffix)
        assert gone.status_code == 404
        assert gone.get_json()["error"]["message"] == f"No prediction has the id {prediction.id}."
    assert client.get(f"/predictions/{prediction.id}").status_code == 404
    day = prediction.day
    assert str(prediction.id) not in client.get(f"/api/v1/predictions.csv?day={day}").text
    assert str(prediction.id) not in client.get(f"/history?day={day}").text
    # Deleting again, or correcting what is gone, finds nothing.
    assert client.delete(url).status_code == 404
    assert client.post(f"{url}/correction", json={"digit": 1}).status_code == 404


def test_a_replayed_write_does_not_bring_a_deleted_prediction_back(
    store: PredictionStore,
) -> None:
    """An outbox replays the same prediction after Cassandra stored it (the process died
    before the record left the outbox): a delete in between must win."""
    prediction = make_prediction(6, seed=22)
    store.save(prediction)
    store.delete(prediction.id)
    store.save(prediction)  # what the replay writes
    assert set(listed_ids(store, prediction).values()) == {False}


def test_a_delete_cut_short_is_finished_by_the_next(
    store: PredictionStore, cql_session: object
) -> None:
    """When only the row with the image went (Cassandra failed before the rest), a second
    delete finds the listing row and removes the others."""
    prediction = make_prediction(8, seed=23)
    store.save(prediction)
    store.save_correction(prediction.id, 8)
    cql_session.execute(  # type: ignore[attr-defined]
        f"DELETE FROM {store.keyspace}.predictions WHERE id = %s", (prediction.id,)
    )
    store.delete(prediction.id)
    assert set(listed_ids(store, prediction).values()) == {False}


def test_delete_during_a_listing(client: FlaskClient, store: PredictionStore) -> None:
    day = date(2024, 3, 1)
    start = datetime(2024, 3, 1, 9, tzinfo=UTC)
    made = [make_prediction(1, created_at=start + timedelta(seconds=i), seed=i) for i in range(12)]
    store.save_many(made)
    newest_first = made[::-1]
    first = client.get(f"/api/v1/predictions?day={day}&limit=5").get_json()
    assert [p["id"] for p in first["predictions"]] == [str(p.id) for p in newest_first[:5]]
    victim = newest_first[7]  # on the next page
    assert client.delete(f"/api/v1/predictions/{victim.id}").status_code == 204
    seen = [p["id"] for p in first["predictions"]]
    url = first["next"]
    while url:
        body = client.get(url).get_json()
        seen += [p["id"] for p in body["predictions"]]
        url = body["next"]
    assert seen == [str(p.id) for p in newest_first if p is not victim]


def test_delete_during_an_export(store: PredictionStore) -> None:
    """The ZIP is being sent; a prediction further down is deleted meanwhile (its listing
    row was already read with the first page of the day)."""
    start = datetime(2024, 3, 2, 9, tzinfo=UTC)
    made = [make_prediction(7, created_at=start + timedelta(seconds=i), seed=i) for i in range(40)]
    store.save_many(made)
    chunks = export.zip_chunks(store, ExportQuery(day=date(2024, 3, 2)))
    sent = [next(chunks)]
    victim = made[2]  # among the oldest: listed last
    store.delete(victim.id)
    sent += list(chunks)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(sent)))
    ids = [row["id"] for row in csv_rows(archive.read("predictions.csv"))]
    assert ids == [str(p.id) for p in made[::-1] if p is not victim]
    assert not [name for name in archive.namelist() if str(victim.id) in name]


def test_delete_button_of_the_detail_page(client: FlaskClient, store: PredictionStore) -> None:
    prediction = make_prediction(2, seed=24)
    store.save(prediction)
    detail = f"/predictions/{prediction.id}"
    page = client.get(detail).get_data(as_text=True)
    action = f'action="{detail}/delete"'
    assert action in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    refused = client.post(f"{detail}/delete")  # no CSRF token: another site's form
    assert refused.status_code == 400
    assert store.get(prediction.id) is not None

    response = client.post(f"{detail}/delete", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/history"
    assert f"Deleted prediction {prediction.id}" in client.get("/history").get_data(as_text=True)
    assert store.get(prediction.id) is None
    assert client.get(detail).status_code == 404


@pytest.mark.parametrize("bad", ["not-an-id", str(uuid.uuid4())])
def test_deleting_what_is_no_prediction_is_404(client: FlaskClient, bad: str) -> None:
    response = client.delete(f"/api/v1/predictions/{bad}")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == f"No prediction has the id {bad}."
