"""Training: augmentation keeps digits digits; a short real run writes weights and a card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist.classifier import Classifier, card_path
from flaskandmnist.mnist import Mnist, to_float

# TensorFlow is imported in the tests, not here: collecting the quick tier
# (-m "not slow ...") must not load it.
pytestmark = pytest.mark.slow


def test_augmentation_moves_ink_but_keeps_it(mnist: Mnist) -> None:
    import tensorflow as tf

    from flaskandmnist.training import HyperParameters, augment

    images = to_float(mnist.train_images[:256])
    augmented = augment(tf.constant(images), HyperParameters()).numpy()
    assert augmented.shape == images.shape
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    # Every image changed, yet keeps roughly its amount of ink (no digit pushed off the canvas).
    assert np.all(np.abs(augmented - images).sum(axis=(1, 2)) > 1.0)
    ink_ratio = augmented.sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    assert ink_ratio.min() > 0.5 and ink_ratio.max() < 2.0


def test_short_training_run_writes_weights_and_model_card(
    mnist: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flaskandmnist.training import HyperParameters, train

    # A small slice of MNIST keeps this short; the test set stays the real one.
    small = Mnist(
        mnist.train_images[:3000],
        mnist.train_labels[:3000],
        mnist.test_images[:1000],
        mnist.test_labels[:1000],
        mnist.checksums,
    )
    out = tmp_path / "tiny.weights.h5"
    card = train(small, out, HyperParameters(epochs=2, validation_size=500, seed=3))

    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed and "val_accuracy" in printed
    assert json.loads(card_path(out).read_text()) == card
    assert card["data"]["train_examples"] == 2500 and card["data"]["validation_examples"] == 500
    assert card["hyper_parameters"]["seed"] == 3
    assert card["library_versions"]["keras"]
    assert set(card["test_per_class_accuracy"]) == {str(d) for d in range(10)}
    # Even two epochs on 2,500 digits learn something real; chance is 10%.
    assert card["test_accuracy"] > 0.8
    reloaded = Classifier.load(out)
    assert reloaded.version == card["model_version"]
    predicted = reloaded.probabilities(to_float(small.test_images)).argmax(axis=1)
    assert np.mean(predicted == small.test_labels) == pytest.approx(card["test_accuracy"])
