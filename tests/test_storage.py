"""The storage module against the real Cassandra: round trips, sizes, hostile input, restart."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, eventually
from sample_predictions import make_prediction, png

from flaskandmnist.domain import Prediction, UnknownPrediction, sanitize_filename
from flaskandmnist.storage import PredictionStore, StorageError, StoreConnector


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def store(
    cassandra: CassandraServer, new_keyspace: Callable[[str], str]
) -> Iterator[PredictionStore]:
    store = PredictionStore.connect(cassandra.settings(new_keyspace("test_storage")))
    yield store
    store.close()


# --- without Cassandra ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ziffer_7_ß_数字_\u0667.png", "ziffer_7_ß_数字_\u0667.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\eve\\My Digits\\7.png", "7.png"),
        ("'; DROP TABLE predictions; --.png", "'; DROP TABLE predictions; --.png"),
        ("a\x00b\nc\td\u202egnp.exe", "ab c dgnp.exe"),
        ("zero\u200bwidth.png", "zerowidth.png"),
        ("..", ""),
        (".hidden.png", "hidden.png"),
        ("   spaced   out .png  ", "spaced out .png"),
        ("e\u0301.png", "\u00e9.png"),
        ("dir/", ""),
        ("x" * 1000 + ".png", "x" * 255),
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


def test_a_not_a_digit_answer_is_stored_and_listed_beside_older_ten_digit_rows(
    store: PredictionStore,
) -> None:
    older = make_prediction(3, seed=41)  # ten probabilities, as before "not a digit"
    refused = dataclasses.replace(
        make_prediction(3, seed=42),
        probabilities=(0.01,) * 10 + (0.9,),
        confidence=0.9,
        not_a_digit=True,
    )
    store.save(older)
    store.save(refused)

    assert store.get(refused.id) == refused
    assert store.get(older.id) == older and not older.not_a_digit
    listed = {summary.id: summary for summary in store.latest(50)}
    assert listed[refused.id].not_a_digit and not listed[older.id].not_a_digit


def test_prediction_is_validated_and_normalised() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_999, tzinfo=UTC)
    prediction = make_prediction(3, filename="../x.png", created_at=moment)
    assert prediction.created_at == moment.replace(microsecond=678_000)
    assert prediction.filename == "x.png"
    assert prediction.day.isoformat() == "2026-01-02"
    assert prediction.id.version == 1
    with pytest.raises(ValueError, match="timezone"):
        make_prediction(created_at=datetime(2026, 1, 1))
    for change, message in [
        ({"digit": 10}, "digit"),
        ({"source": "email"}, "source"),
        ({"probabilities": (0.1,) * 9}, "10 or 11 values"),
        ({"id": uuid.uuid4()}, "time-based"),
    ]:
        with pytest.raises(ValueError, match=message):
            Prediction(**{**prediction.__dict__, **change})


# --- against the real server ------------------------------------------------------------


@pytest.mark.cassandra
def test_round_trip_by_id_recency_and_digit(
    cassandra: CassandraServer, new_keyspace: Callable[[str], str]
) -> None:
    # A keyspace of its own: the recency and count checks see exactly these predictions.
    store = PredictionStore.connect(cassandra.settings(new_keyspace("test_round_trip")))
    now = datetime.now(UTC)
    # 30 predictions over three UTC days, 1 ms apart, oldest first.
    saved = [
        make_prediction(
            i % 10,
            created_at=now - timedelta(days=2 - i // 10, milliseconds=100 - i),
            seed=i,
        )
        for i in range(30)
    ]
    try:
        for prediction in saved:
            store.save(prediction)

        for prediction in saved:
            loaded = store.get(prediction.id)
            assert loaded == prediction
            assert sha256(loaded.image) == sha256(prediction.image)
            assert sha256(loaded.model_input_png) == sha256(prediction.model_input_png)

        newest_first = saved[::-1]
        latest = store.latest(25)  # crosses from today's bucket into the day before yesterday's
        assert [s.id for s in latest] == [p.id for p in newest_first[:25]]
        for summary, prediction in zip(latest, newest_first, strict=False):
            assert summary.created_at == prediction.created_at
            assert summary.filename == prediction.filename
            assert summary.image_size == len(prediction.image)
            assert sha256(summary.model_input_png) == sha256(prediction.model_input_png)
        assert len(store.latest(100)) == 30
        assert list(store.days()) == sorted({p.day for p in saved}, reverse=True)

        for digit in range(10):
            today = [p for p in newest_first if p.digit == digit and p.day == now.date()]
            assert [s.id for s in store.by_digit(digit)] == [p.id for p in today]
            old_day = saved[0].day
            old = [p for p in newest_first if p.digit == digit and p.day == old_day]
            assert [s.id for s in store.by_digit(digit, old_day)] == [p.id for p in old]

        # Paging with the cursor walks all 30, newest first, across the day buckets.
        pages, before = [], None
        while True:
            page = store.page(7, before=before)
            pages.append([s.id for s in page.items])
            if (before := page.next_before) is None:
                break
        assert [len(ids) for ids in pages] == [7, 7, 7, 7, 2]
        assert [i for ids in pages for i in ids] == [p.id for p in newest_first]
        # ... and filtered by digit, over all days.
        sevens = [p.id for p in newest_first if p.digit == 7]
        first = store.page(2, digit=7)
        assert [s.id for s in first.items] == sevens[:2]
        assert [s.id for s in store.page(2, before=first.next_before, digit=7).items] == sevens[2:]
        assert store.page(2, before=first.next_before, digit=7).next_before is None

        assert store.digit_counts() == dict.fromkeys(range(10), 3)
        assert store.digit_counts(now.date()) == dict.fromkeys(range(10), 1)
    finally:
        store.close()


@pytest.mark.cassandra
@pytest.mark.parametrize(
    "image",
    [png(1, 1), os.urandom(1024 * 1024), os.urandom(10 * 1024 * 1024)],
    ids=["1-pixel-png", "1-MiB", "10-MiB-max-image-bytes"],
)
def test_images_of_any_allowed_size_are_stored_exactly(
    store: PredictionStore, image: bytes
) -> None:
    prediction = make_prediction(image=image)
    store.save(prediction)
    loaded = store.get(prediction.id)
    assert loaded is not None
    assert loaded.image_size == len(image)
    assert sha256(loaded.image) == sha256(image)


@pytest.mark.cassandra
@pytest.mark.parametrize("size", [100, 3 * 1024, 4 * 1024, 5 * 1024, 64 * 1024])
def test_writes_of_any_image_size_stay_within_cassandras_batch_limits(
    store: PredictionStore, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    """Small predictions go to Cassandra as one batch, large ones not: either way Cassandra
    neither refuses nor warns about a batch (its warnings reach the driver's log)."""
    caplog.set_level(logging.WARNING, logger="cassandra")
    prediction = make_prediction(image=os.urandom(size))
    store.save(prediction)
    loaded = store.get(prediction.id)
    assert loaded is not None
    assert loaded.image == prediction.image
    assert [s.id for s in store.latest(1)] == [prediction.id]
    assert [r.getMessage() for r in caplog.records if "warning" in r.getMessage().lower()] == []


@pytest.mark.cassandra
def test_predictions_saved_together_all_land_without_a_warning(
    store: PredictionStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Predictions saved at once, whatever their number, digits and sizes: every row lands,
    and Cassandra warns about none of the writes."""
    caplog.set_level(logging.WARNING, logger="cassandra")
    small = [make_prediction(digit % 10, seed=digit) for digit in range(24)]
    large = [make_prediction(d, image=os.urandom(size)) for d, size in ((1, 3500), (2, 64_000))]
    together = [*small[:12], *large, *small[12:]]
    store.save_many(together)
    for prediction in together:
        assert store.get(prediction.id) == prediction
    for digit in range(10):
        listed = {s.id for s in store.by_digit(digit)}
        assert {p.id for p in together if p.digit == digit} <= listed
    assert [r.getMessage() for r in caplog.records if "warning" in r.getMessage().lower()] == []


@pytest.mark.cassandra
@pytest.mark.parametrize(
    "filename",
    [
        "ziffer_7_ß_数字_\u0667_🙂.png",
        "../../etc/passwd",
        "'; DROP TABLE predictions; --",
        "x', 0x00, 7); DELETE FROM predictions WHERE id = now(); --",
        "a\x00b\r\nc\u202egnp.exe",
        '"quoted" $$dollar$$ \\back\\slash',
    ],
)
def test_hostile_filenames_are_sanitised_and_bound_as_values(
    store: PredictionStore, cql_session: Session, filename: str
) -> None:
    prediction = make_prediction(filename=filename)
    store.save(prediction)
    loaded = store.get(prediction.id)
    assert loaded is not None
    assert loaded.filename == sanitize_filename(filename)
    listed = {s.id: s for s in store.by_digit(prediction.digit)}
    assert listed[prediction.id].filename == sanitize_filename(filename)
    # Nothing in the text was executed as CQL: every table is still there.
    tables = {
        row.table_name
        for row in cql_session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (store.keyspace,),
        )
    }
    assert {"predictions", "predictions_by_minute", "predictions_by_digit_minute"} <= tables


@pytest.mark.cassandra
def test_saving_twice_is_idempotent(store: PredictionStore) -> None:
    day = datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)
    prediction = make_prediction(4, created_at=day)
    store.save(prediction)
    store.save(prediction)  # e.g. replayed after an unclear failure
    assert [s.id for s in store.by_digit(4, day.date())] == [prediction.id]
    assert store.digit_counts(day.date()) == {**dict.fromkeys(range(10), 0), 4: 1}


@pytest.mark.cassandra
def test_corrections_are_kept_for_retraining(store: PredictionStore) -> None:
    day = datetime(2003, 3, 3, 12, tzinfo=UTC)
    prediction = make_prediction(1, created_at=day)
    store.save(prediction)
    store.save_correction(prediction.id, 2)
    correction = store.save_correction(prediction.id, 7)  # the later one wins
    assert (correction.true_digit, correction.predicted_digit) == (7, 1)
    assert store.corrections(day.date()) == [correction]
    assert correction.model_input_png == prediction.model_input_png
    with pytest.raises(UnknownPrediction):
        store.save_correction(make_prediction().id, 3)
    with pytest.raises(ValueError, match="0-9"):
        store.save_correction(prediction.id, 10)


@pytest.mark.cassandra
def test_get_of_unknown_id_is_none(store: PredictionStore) -> None:
    assert store.get(make_prediction().id) is None


@pytest.mark.cassandra
def test_connect_to_missing_keyspace_is_a_clear_error(cassandra: CassandraServer) -> None:
    with pytest.raises(StorageError, match=r"no_such_keyspace.*csd\.py"):
        PredictionStore.connect(cassandra.settings("no_such_keyspace"))


@pytest.mark.cassandra
def test_every_driver_connection_sends_without_delay(store: PredictionStore) -> None:
    # With Nagle's algorithm on, a row with an image larger than one TCP segment waits for the
    # node's delayed ACK before its tail leaves: every write of a drawing stalls.
    store.save(make_prediction())
    cluster = store._cluster
    connections = [
        c for holder in cluster.get_connection_holders() for c in holder.get_connections()
    ]
    assert len(connections) >= 2  # the control connection and at least one pool connection
    for connection in connections:
        sock = connection._socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, connection


@pytest.mark.cassandra
def test_a_connector_shares_one_store_per_process_and_connects_anew_after_fork(
    cassandra: CassandraServer, store: PredictionStore
) -> None:
    stores = StoreConnector(cassandra.settings(store.keyspace))
    assert stores.current() is None  # built, not connected
    parent = stores.get()
    try:
        assert stores.get() is parent
        assert stores.current() is parent
        child_prediction = make_prediction(5)
        pid = os.fork()
        if pid == 0:  # the child: like a gunicorn worker forked from a master that connected
            try:
                fresh = stores.current() is None
                child = stores.get()
                child.save(child_prediction)
                os._exit(0 if fresh and child is not parent else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent.get(child_prediction.id) == child_prediction  # the parent's still works
    finally:
        stores.close()
    assert stores.current() is None


@pytest.mark.cassandra
def test_session_survives_a_restart_and_failed_writes_raise(
    cassandra: CassandraServer,
    store: PredictionStore,
    cql_session: Session,
    run_csd: Callable[..., subprocess.CompletedProcess[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = make_prediction(8)
    store.save(before)

    cassandra.stop()
    during = make_prediction(9)
    with (
        caplog.at_level(logging.ERROR, logger="flaskandmnist.storage"),
        pytest.raises(StorageError, match=str(during.id)),
    ):
        store.save(during)
    assert any(str(during.id) in record.getMessage() for record in caplog.records)

    with ThreadPoolExecutor(1) as pool:  # csd.py waits for the server to come back
        csd = pool.submit(run_csd, "--keyspace", store.keyspace, "--wait-timeout", "300")
        cassandra.start()
        assert csd.result().returncode == 0, csd.result().stderr
    assert "nothing to change" in csd.result().stdout
    started = time.monotonic()
    assert eventually(lambda: store.get(before.id)) == before
    cassandra.timings["reconnect"] = time.monotonic() - started
    store.save(during)  # the same store, the same prepared statements
    assert store.get(during.id) == during
    # The tests after this one share the admin session: hand them a server it reaches again.
    eventually(lambda: cql_session.execute("SELECT release_version FROM system.local").one())
