"""What a retrain learns from (flaskandmnist/correction_set.py): the latest correction of
each prediction as its label, a deterministic held-out share, and clear refusals when there
is nothing to start from or nothing to learn."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cassandra_server import CassandraServer
from PIL import Image
from sample_predictions import make_prediction

from flaskandmnist.__main__ import main
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.correction_set import is_held_out, latest, read_corrections
from flaskandmnist.domain import Correction
from flaskandmnist.imaging import to_mnist
from flaskandmnist.mnist import Mnist
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.storage import PredictionStore

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def correction(
    prediction_id: uuid.UUID, true_digit: int, minutes: int, predicted: int = 7
) -> Correction:
    corrected_at = NOW + timedelta(minutes=minutes)
    return Correction(prediction_id, true_digit, predicted, corrected_at, "v", b"")


# --- labels -----------------------------------------------------------------------------------


def test_the_latest_correction_of_a_prediction_wins() -> None:
    first, second = uuid.uuid1(), uuid.uuid1()
    kept = latest(
        [
            correction(first, 1, minutes=5),
            correction(first, 4, minutes=1),
            correction(second, 2, minutes=0),
            correction(first, 9, minutes=3),
        ]
    )
    assert {c.prediction_id: c.true_digit for c in kept} == {first: 1, second: 2}


def test_a_correction_that_confirms_the_answer_is_a_label_too() -> None:
    confirmed = uuid.uuid1()
    kept = latest([correction(confirmed, 3, 0, predicted=5), correction(confirmed, 5, 1, 5)])
    assert [(c.true_digit, c.predicted_digit) for c in kept] == [(5, 5)]


def test_the_held_out_share_is_decided_by_the_prediction_id_alone() -> None:
    ids = [uuid.uuid1() for _ in range(4000)]
    decided = [is_held_out(i, 0.2) for i in ids]
    assert decided == [is_held_out(uuid.UUID(str(i)), 0.2) for i in ids]
    assert 0.17 < np.mean(decided) < 0.23
    # A larger share holds back what a smaller one did, and more.
    assert all(is_held_out(i, 0.5) for i, held in zip(ids, decided, strict=True) if held)
    assert not any(is_held_out(i, 0.0) for i in ids)


# --- reading them from Cassandra ----------------------------------------------------------------


def upload(image: np.ndarray) -> bytes:
    """An MNIST digit as a black-on-white 112x112 PNG, as a person would upload it."""
    out = io.BytesIO()
    Image.fromarray(255 - image).resize((112, 112)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def store(
    cassandra: CassandraServer, new_keyspace: Callable[[str], str]
) -> Iterator[PredictionStore]:
    store = PredictionStore.connect(cassandra.settings(new_keyspace("test_corrections")))
    yield store
    store.close()


def test_every_latest_correction_is_read_as_a_label_with_its_original_image(
    store: PredictionStore, mnist: Mnist
) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    made = {
        "corrected twice": make_prediction(7, image=upload(mnist.test_images[0]), seed=0),
        "confirmed": make_prediction(2, image=upload(mnist.test_images[1]), seed=1),
        "was not a digit": replace(
            make_prediction(1, image=upload(mnist.test_images[2]), seed=2), not_a_digit=True
        ),
        "uncorrected": make_prediction(0, image=upload(mnist.test_images[3]), seed=3),
        "yesterday": make_prediction(4, image=upload(mnist.test_images[4]), created_at=yesterday),
    }
    for prediction in made.values():
        store.save(prediction)
    store.save_correction(made["corrected twice"].id, 3)
    store.save_correction(made["corrected twice"].id, 7)
    store.save_correction(made["confirmed"].id, 2)
    store.save_correction(made["was not a digit"].id, 0)
    store.save_correction(made["yesterday"].id, 4)

    everything = read_corrections(store, holdout_share=0.0)

    labels = {item.prediction_id: item.label for item in everything.train}
    assert labels == {
        made["corrected twice"].id: 7,
        made["confirmed"].id: 2,
        made["was not a digit"].id: 0,
        made["yesterday"].id: 4,
    }
    example = next(i for i in everything.train if i.prediction_id == made["confirmed"].id)
    np.testing.assert_array_equal(example.image, to_mnist(made["confirmed"].image))
    assert everything.held_out == []

    by_source = made["confirmed"].source
    without = read_corrections(
        store, 0.0, exclude_days=[yesterday.date()], exclude_sources=[by_source]
    )
    assert made["yesterday"].id not in {i.prediction_id for i in without.train}
    assert all(item.source != by_source for item in without.train)
    assert without.excluded == 4 - len(without.train)
    assert without.summary()["excluded_days"] == [yesterday.date().isoformat()]

    held = read_corrections(store, holdout_share=0.5)
    assert {i.prediction_id for i in held.held_out} == {i for i in labels if is_held_out(i, 0.5)}


# --- the command's refusals -------------------------------------------------------------------


@pytest.fixture
def operator(
    cassandra: CassandraServer,
    store: PredictionStore,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelRegistry:
    """The command line pointed at the store's keyspace; its registry."""
    for name, value in {**cassandra.environ(), "CASSANDRA_KEYSPACE": store.keyspace}.items():
        monkeypatch.setenv(name, value)
    return ModelRegistry(store.session, store.keyspace)


def test_retrain_refuses_clearly_when_the_active_version_has_no_weights(
    operator: ModelRegistry, classifier: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    operator.register(classifier.card, classifier.litert)
    operator.activate_first(classifier.version)

    assert main(["retrain"]) == 2

    error = capsys.readouterr().err
    assert f"the active version {classifier.version} has no weights to start from" in error


def test_retrain_refuses_clearly_without_corrections(
    operator: ModelRegistry,
    store: PredictionStore,
    classifier: Classifier,
    capsys: pytest.CaptureFixture[str],
) -> None:
    weights = DEFAULT_MODEL_PATH.read_bytes()
    operator.register(classifier.card, classifier.litert, weights=weights)
    operator.activate_first(classifier.version)
    store.save(make_prediction(3))

    assert main(["retrain"]) == 2

    assert "no corrections to learn from" in capsys.readouterr().err
    assert [v.version for v in operator.versions()] == [classifier.version]


def test_retrain_refuses_a_bad_holdout_share() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["retrain", "--holdout-share", "1.5"])
    assert exited.value.code == 2
