"""Training: augmentation keeps digits digits; a short real run writes weights and a card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist.classifier import Classifier, answers, card_path
from flaskandmnist.mnist import Mnist, to_float
from flaskandmnist.negatives import KINDS

# TensorFlow is imported in the tests, not here: collecting the quick tier
# (-m "not slow ...") must not load it.
pytestmark = pytest.mark.slow


def test_augmentation_moves_ink_but_keeps_it(mnist: Mnist) -> None:
    import tensorflow as tf

    from flaskandmnist.training import HyperParameters, augment

    tf.random.set_seed(0)  # the same random maps each run
    images = to_float(mnist.train_images[:256])
    augmented = augment(tf.constant(images), HyperParameters()).numpy()
    assert augmented.shape == images.shape
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    # Every image changed, yet keeps roughly its amount of ink: a bold pen may double or
    # so, a thin one keep a third, and no digit is pushed off the canvas.
    assert np.all(np.abs(augmented - images).sum(axis=(1, 2)) > 1.0)
    ink_ratio = augmented.sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    print(f"ink ratio {ink_ratio.min():.2f}-{ink_ratio.max():.2f}")
    assert ink_ratio.min() > 0.3 and ink_ratio.max() < 3.0


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
    few_negatives = tuple((kind, 40) for kind in KINDS)
    # The weights averaged over about the last ten steps: the default (0.999) averages over
    # thousands, more than two short epochs have.
    hp = HyperParameters(
        epochs=2, validation_size=500, seed=3, negatives=few_negatives, ema_momentum=0.9
    )
    card = train(small, out, hp)

    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed and "val_accuracy" in printed
    assert json.loads(card_path(out).read_text()) == card
    assert card["data"]["train_examples"] == 2500 and card["data"]["validation_examples"] == 500
    assert card["data"]["train_negatives"] == 40 * len(KINDS)
    assert card["data"]["train_redrawn"] == 1250  # half as many again, none refused as blank
    assert 0.25 <= card["temperature"] <= 4.0
    assert set(card["held_out_negatives_refused"]) == set(KINDS)
    assert card["hyper_parameters"]["seed"] == 3
    assert card["library_versions"]["keras"]
    assert set(card["test_per_class_accuracy"]) == {str(d) for d in range(10)}
    # Even two epochs on 2,500 digits learn something real; chance is 10%.
    assert card["test_accuracy"] > 0.8
    reloaded = Classifier.load(out)
    assert reloaded.version == card["model_version"]
    probabilities = reloaded.probabilities(to_float(small.test_images))
    assert probabilities.shape == (1000, 11)
    predicted = answers(probabilities)
    assert np.mean(predicted == small.test_labels) == pytest.approx(card["test_accuracy"])


def test_warm_start_keeps_a_ten_digit_models_weights(tmp_path: Path) -> None:
    from flaskandmnist.model import build_model
    from flaskandmnist.training import warm_started

    ten = build_model(outputs=10)
    path = tmp_path / "ten.weights.h5"
    ten.save_weights(path)
    eleven = warm_started(str(path), dropout=0.5)

    kernel, bias = eleven.get_layer("logits").get_weights()
    old_kernel, old_bias = ten.get_layer("logits").get_weights()
    assert kernel.shape == (1024, 11)
    np.testing.assert_array_equal(kernel[:, :10], old_kernel)
    np.testing.assert_array_equal(bias[:10], old_bias)
    for name in ("conv1", "conv2", "fc1"):
        for new, old in zip(
            eleven.get_layer(name).get_weights(), ten.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(new, old)


def test_temperature_is_fitted_to_the_labels() -> None:
    from flaskandmnist.training import fit_temperature

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    # Logits twice as sharp as the truth they came from: the fitted temperature undoes it.
    true_logits = rng.normal(0, 1, (2000, 3))
    true_logits[np.arange(2000), labels] += 1.0
    true_probabilities = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true_probabilities])
    assert fit_temperature(2 * true_logits, labels) == pytest.approx(2.0, rel=0.15)


def test_a_retrain_repeats_corrections_to_a_tenth_of_its_mnist_sample_at_most_ten_times() -> None:
    from flaskandmnist.retraining import FineTuning

    fine_tuning = FineTuning(mnist_sample=10_000)
    assert [fine_tuning.repeats(n) for n in (0, 20, 100, 300, 3000)] == [0, 10, 10, 3, 1]
