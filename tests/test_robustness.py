"""Calibration and robustness of the shipped model: its confidence means what it says on
the MNIST test set, and the robustness suite (MNIST test digits redrawn, degraded and
photographed) runs on a sample here and in full from `evaluate --suite`."""

from __future__ import annotations

import numpy as np
import pytest

from flaskandmnist import suite
from flaskandmnist.__main__ import main
from flaskandmnist.classifier import Classifier
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
