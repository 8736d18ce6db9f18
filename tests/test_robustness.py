"""Calibration and robustness of the shipped model: its confidence means what it says on
the MNIST test set, and the robustness suite (MNIST test digits redrawn, degraded and
photographed) runs on a sample here and in full from `evaluate --suite`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist import suite
from flaskandmnist.__main__ import main
from flaskandmnist.classifier import Classifier, card_path, litert_path
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.evaluation import calibration_error
from flaskandmnist.mnist import Mnist, to_float


def test_calibration_error_is_the_gap_between_confidence_and_accuracy() -> None:
    def rows(*first_two: float) -> np.ndarray:
        """Probabilities of 0 and 1; the other digits and "not a digit" get none."""
        return np.array([[*first_two] + [0.0] * 9] * 4)

    # Four answers at 0.9 confidence, three of them right: a gap of 0.15.
    labels = np.array([0, 0, 0, 1])
    assert calibration_error(rows(0.9, 0.1), labels) == pytest.approx(0.15)
    # Confidence matching the accuracy exactly: no error.
    assert calibration_error(rows(0.5, 0.5)[:2], np.array([0, 1])) == pytest.approx(0.0)


def test_the_shipped_model_is_calibrated_on_the_mnist_test_set(
    classifier: Classifier, mnist: Mnist
) -> None:
    probabilities = classifier.probabilities(to_float(mnist.test_images))
    assert calibration_error(probabilities, mnist.test_labels) <= 0.02


def test_a_sample_of_the_robustness_suite_is_read_right(
    classifier: Classifier, mnist: Mnist
) -> None:
    results = suite.run(classifier, mnist.test_images, mnist.test_labels, per_slice=40)
    assert [r.name for r in results] == list(suite.slices())
    for result in results:
        assert result.images == 40
        # A sample this small allows a couple of errors where the full suite reaches 98.5 %.
        assert result.accuracy >= 0.925, result


def test_evaluate_suite_prints_accuracy_per_slice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--suite", "--per-slice", "10"]) == 0
    printed = capsys.readouterr().out
    for name in suite.slices():
        assert name in printed
    assert "accuracy" in printed and "ECE" in printed


def test_evaluate_suite_update_card_records_each_slice_in_the_card(tmp_path: Path) -> None:
    weights = tmp_path / "copy.weights.h5"
    shutil.copy(litert_path(DEFAULT_MODEL_PATH), litert_path(weights))
    shipped = json.loads(card_path(DEFAULT_MODEL_PATH).read_text())
    card_path(weights).write_text(json.dumps(shipped | {"robustness_suite": "stale"}))

    # Printing the suite leaves the card alone; --update-card writes it.
    command = ["evaluate", "--model", str(weights), "--suite", "--per-slice", "10"]
    assert main(command) == 0
    assert json.loads(card_path(weights).read_text())["robustness_suite"] == "stale"
    assert main([*command, "--update-card"]) == 0

    card = json.loads(card_path(weights).read_text())
    recorded = card.pop("robustness_suite")
    shipped.pop("robustness_suite", None)
    assert card == shipped  # the card's other figures stay as they were
    assert recorded["images_per_slice"] == 10
    assert list(recorded["slices"]) == list(suite.slices())
    for figures in recorded["slices"].values():
        assert set(figures) == {"accuracy", "refused", "calibration_error"}
        assert 0.0 <= figures["accuracy"] <= 1.0


def test_the_shipped_card_records_the_whole_suite() -> None:
    recorded = json.loads(card_path(DEFAULT_MODEL_PATH).read_text())["robustness_suite"]
    assert recorded["images_per_slice"] == 10_000
    assert list(recorded["slices"]) == list(suite.slices())


def test_training_digits_are_redrawn_the_suites_ways_and_keep_their_labels(
    classifier: Classifier, mnist: Mnist
) -> None:
    changes = ("pen 1-4%", "downsampled 8-16 px", "bold")
    digits, labels = suite.redraw(mnist.train_images, mnist.train_labels, changes, 60, seed=3)
    assert digits.shape == (60, 28, 28) and digits.dtype == np.float32
    assert digits.min() >= 0.0 and digits.max() <= 1.0
    # Each redrawn digit still shows its label: the model reads nearly all of them so.
    assert np.mean(classifier.probabilities(digits)[:, :10].argmax(axis=1) == labels) >= 0.9
    again = suite.redraw(mnist.train_images, mnist.train_labels, changes, 60, seed=3)
    np.testing.assert_array_equal(digits, again[0])  # seeded: the same training set each run
