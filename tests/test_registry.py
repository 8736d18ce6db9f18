"""The model registry: versions with chunked LiteRT files in Cassandra, the promotion gate,
promote and rollback (flaskandmnist/registry.py, flaskandmnist/model_versions.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer

from flaskandmnist.__main__ import main
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.model_versions import (
    ChecksumError,
    ModelVersion,
    RegistryError,
    promotion_refusal,
)
from flaskandmnist.registry import CHUNK_BYTES, ModelRegistry


def version_with(accuracy: float | None, name: str = "candidate") -> ModelVersion:
    card: dict[str, Any] = {"model_version": name}
    if accuracy is not None:
        card["test_accuracy"] = accuracy
    return ModelVersion(name, card, None, {}, datetime.now(UTC), "0" * 64, 1)


def card_as(classifier: Classifier, version: str, **extra: Any) -> dict[str, Any]:
    """The shipped model's card under another version name: the same file, a new version."""
    return {**classifier.card, "model_version": version, **extra}


@pytest.fixture
def registry(cql_session: Session, new_keyspace: Callable[[str], str]) -> ModelRegistry:
    return ModelRegistry(cql_session, new_keyspace("test_registry"))


# --- the promotion gate -----------------------------------------------------------------------


def test_a_candidate_at_most_a_tenth_of_a_point_below_may_be_promoted() -> None:
    active = version_with(0.9962, "active")
    assert promotion_refusal(version_with(0.9952), active) is None
    assert promotion_refusal(version_with(0.9990), active) is None


def test_a_candidate_more_than_a_tenth_of_a_point_below_is_refused() -> None:
    reason = promotion_refusal(version_with(0.9951), version_with(0.9962, "active"))
    assert reason is not None and "99.51%" in reason and "active" in reason


def test_a_candidate_whose_card_gives_no_accuracy_is_refused() -> None:
    assert promotion_refusal(version_with(None), version_with(0.9962, "active")) is not None


# --- versions and their files ----------------------------------------------------------------


def test_a_registered_file_comes_back_whole_from_its_chunks(
    registry: ModelRegistry, classifier: Classifier, cql_session: Session, mnist: Any
) -> None:
    assert len(classifier.litert) > 2 * CHUNK_BYTES  # stored in several chunks
    registered = registry.register(classifier.card, classifier.litert, parent="p")

    loaded = registry.load(classifier.version)

    assert loaded.litert == classifier.litert
    assert loaded.card == classifier.card and loaded.version == classifier.version
    assert registered.parent == "p" and registered.litert_size == len(classifier.litert)
    assert registry.get(classifier.version) == registered
    images = mnist.test_images[:50].astype(np.float32) / 255
    np.testing.assert_array_equal(loaded.probabilities(images), classifier.probabilities(images))


def test_registering_the_same_file_again_changes_nothing(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    first = registry.register(classifier.card, classifier.litert)
    assert registry.register(classifier.card, classifier.litert) == first
    assert [v.version for v in registry.versions()] == [classifier.version]


def test_a_version_name_cannot_be_registered_with_another_file(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    registry.register(card_as(classifier, "v2"), classifier.litert)
    other = classifier.litert[:-1] + bytes([classifier.litert[-1] ^ 1])
    card = {k: v for k, v in card_as(classifier, "v2").items() if k != "litert_sha256"}
    with pytest.raises(RegistryError, match="another LiteRT file"):
        registry.register(card, other)


def test_a_card_naming_another_file_is_refused(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    with pytest.raises(RegistryError, match="names another LiteRT file"):
        registry.register(card_as(classifier, "v2"), classifier.litert[:-1])


def test_a_damaged_file_is_refused_on_load(
    registry: ModelRegistry, classifier: Classifier, cql_session: Session
) -> None:
    registry.register(classifier.card, classifier.litert)
    cql_session.execute(
        f"UPDATE {registry.keyspace}.model_chunks SET data = %s WHERE version = %s AND chunk = 1",
        (b"\0" * CHUNK_BYTES, classifier.version),
    )
    with pytest.raises(ChecksumError, match="damaged"):
        registry.load(classifier.version)


def test_a_missing_chunk_is_refused_on_load(
    registry: ModelRegistry, classifier: Classifier, cql_session: Session
) -> None:
    registry.register(classifier.card, classifier.litert)
    cql_session.execute(
        f"DELETE FROM {registry.keyspace}.model_chunks WHERE version = %s AND chunk = 0",
        (classifier.version,),
    )
    with pytest.raises(ChecksumError):
        registry.load(classifier.version)


@pytest.fixture(scope="module")
def shipped_weights() -> bytes:
    return DEFAULT_MODEL_PATH.read_bytes()


def test_registered_weights_come_back_whole_from_their_chunks(
    registry: ModelRegistry, classifier: Classifier, shipped_weights: bytes
) -> None:
    assert len(shipped_weights) > 2 * CHUNK_BYTES  # stored in several chunks
    registered = registry.register(classifier.card, classifier.litert, weights=shipped_weights)

    assert registry.weights(classifier.version) == shipped_weights
    assert registered.weights_size == len(shipped_weights)
    assert registry.get(classifier.version) == registered
    assert registered.weights_sha256 == classifier.card["weights_sha256"]


def test_a_version_registered_without_weights_stays_readable_and_gets_them_later(
    registry: ModelRegistry, classifier: Classifier, shipped_weights: bytes
) -> None:
    first = registry.register(classifier.card, classifier.litert)
    assert first.weights_sha256 is None
    assert registry.load(classifier.version).litert == classifier.litert
    with pytest.raises(RegistryError, match="no Keras weights in the registry to start from"):
        registry.weights(classifier.version)

    again = registry.register(classifier.card, classifier.litert, weights=shipped_weights)

    assert again.weights_sha256 == classifier.card["weights_sha256"]
    assert registry.weights(classifier.version) == shipped_weights
    # Once kept, registering again (with or without them) changes nothing.
    assert registry.register(classifier.card, classifier.litert) == registry.get(classifier.version)


def test_weights_other_than_the_card_names_are_refused(
    registry: ModelRegistry, classifier: Classifier, shipped_weights: bytes
) -> None:
    with pytest.raises(RegistryError, match="names another weights file"):
        registry.register(classifier.card, classifier.litert, weights=shipped_weights[:-1])


def test_damaged_weights_are_refused(
    registry: ModelRegistry, classifier: Classifier, cql_session: Session, shipped_weights: bytes
) -> None:
    registry.register(classifier.card, classifier.litert, weights=shipped_weights)
    cql_session.execute(
        f"DELETE FROM {registry.keyspace}.model_weight_chunks WHERE version = %s AND chunk = 2",
        (classifier.version,),
    )
    with pytest.raises(ChecksumError, match=r"weights of .* damaged"):
        registry.weights(classifier.version)


def test_loading_an_unknown_version_says_so(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no model version 'nope'"):
        registry.load("nope")


# --- the active version ----------------------------------------------------------------------


def test_the_first_version_activated_stays_active_for_later_starts(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    assert registry.active() is None
    registry.register(classifier.card, classifier.litert)
    registry.register(card_as(classifier, "v2"), classifier.litert)

    first = registry.activate_first(classifier.version)
    again = registry.activate_first("v2")

    assert again.version == first.version == classifier.version
    assert [a.version for a in registry.history()] == [classifier.version]


def test_promote_then_rollback_walks_back_the_history(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    for version in ("v2", "v3"):
        registry.register(card_as(classifier, version), classifier.litert)
    registry.register(classifier.card, classifier.litert)
    registry.activate_first(classifier.version)

    registry.promote("v2")
    registry.promote("v3")
    assert registry.active().version == "v3"

    assert registry.rollback().version == "v2"
    assert registry.rollback().version == classifier.version
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert [a.action for a in registry.history()] == [
        "rollback",
        "rollback",
        "promote",
        "promote",
        "registered",
    ]


def test_promotion_refuses_a_worse_candidate_unless_forced(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    registry.register(classifier.card, classifier.litert)
    registry.activate_first(classifier.version)
    worse = classifier.card["test_accuracy"] - 0.0011
    registry.register(card_as(classifier, "worse", test_accuracy=worse), classifier.litert)

    with pytest.raises(RegistryError, match=r"not promoted.*--force"):
        registry.promote("worse")
    assert registry.active().version == classifier.version

    assert registry.promote("worse", force=True).action == "promote --force"
    assert registry.active().version == "worse"


def test_promoting_the_active_or_an_unknown_version_is_refused(
    registry: ModelRegistry, classifier: Classifier
) -> None:
    registry.register(classifier.card, classifier.litert)
    with pytest.raises(RegistryError, match="no model version is active"):
        registry.promote(classifier.version)
    registry.activate_first(classifier.version)
    with pytest.raises(RegistryError, match="active version already"):
        registry.promote(classifier.version)
    with pytest.raises(RegistryError, match="no model version 'nope'"):
        registry.promote("nope")


# --- the operator's commands (python -m flaskandmnist ...) ----------------------------------


@pytest.fixture
def operator_env(
    cassandra: CassandraServer, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> ModelRegistry:
    """The command line's settings pointed at the registry's keyspace."""
    for name, value in {**cassandra.environ(), "CASSANDRA_KEYSPACE": registry.keyspace}.items():
        monkeypatch.setenv(name, value)
    return registry


def test_models_lists_the_versions_and_marks_the_active_one(
    operator_env: ModelRegistry, classifier: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_env.register(classifier.card, classifier.litert)
    operator_env.register(card_as(classifier, "v2"), classifier.litert, parent=classifier.version)
    operator_env.activate_first(classifier.version)

    assert main(["models"]) == 0

    out = capsys.readouterr().out
    assert f"* {classifier.version}" in out
    assert "  v2" in out and f"{classifier.card['test_accuracy']:.2%}" in out
    assert f"active: {classifier.version}" in out


def test_a_refused_promotion_is_a_clear_error_and_changes_nothing(
    operator_env: ModelRegistry, classifier: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_env.register(classifier.card, classifier.litert)
    operator_env.activate_first(classifier.version)
    worse = card_as(classifier, "worse", test_accuracy=0.5)
    operator_env.register(worse, classifier.litert)

    assert main(["promote", "worse"]) == 2
    assert "not promoted" in capsys.readouterr().err
    assert operator_env.active().version == classifier.version

    assert main(["promote", "worse", "--force"]) == 0
    assert operator_env.active().version == "worse"
    assert main(["rollback"]) == 0
    assert operator_env.active().version == classifier.version
