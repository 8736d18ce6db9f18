"""The shipped classifier: its contract, and agreement between serving and training."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flaskandmnist.classifier import (
    NOT_A_DIGIT,
    Classifier,
    ModelNotFoundError,
    Scores,
    answers,
    card_path,
    litert_path,
)
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.imaging import to_mnist
from flaskandmnist.mnist import Mnist, to_float
from flaskandmnist.negatives import KINDS

#: A fixed sample of the MNIST test set, the same on every run.
SAMPLE = np.random.default_rng(2024).choice(10000, size=300, replace=False)


def png(pixels: np.ndarray, scale: int = 1) -> bytes:
    """Encode a uint8 grayscale image as PNG, optionally enlarged like a scan."""
    image = Image.fromarray(pixels, "L")
    if scale > 1:
        image = image.resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_model_card_describes_the_shipped_weights() -> None:
    card = json.loads(card_path(DEFAULT_MODEL_PATH).read_text())
    assert card["model_version"].startswith("mnist-deep-")
    # Digits answered "not a digit" count as wrong in test_accuracy; the false refusals
    # through the pipeline are bounded on their own (the bar: 0.3 %).
    assert card["test_accuracy"] >= 0.99
    assert card["test_refused_through_pipeline"] <= 0.003
    assert card["test_calibration_error"] <= 0.02
    assert set(card["held_out_negatives_refused"]) == set(KINDS)
    assert 0.25 <= card["temperature"] <= 4.0
    assert set(card["test_per_class_accuracy"]) == {str(d) for d in range(10)}
    assert card["data"]["md5_uncompressed"]["t10k-images-idx3-ubyte"] == (
        "2646ac647ad5339dbf082846283269ea"
    )
    assert {"hyper_parameters", "library_versions", "training_seconds"} <= card.keys()


def test_prediction_has_digit_confidence_and_eleven_probabilities(
    classifier: Classifier, mnist: Mnist
) -> None:
    prediction = classifier.predict_one(to_float(mnist.test_images[0]))
    assert prediction.digit == mnist.test_labels[0] == 7
    # The ten digits, then "not a digit".
    assert len(prediction.probabilities) == 11
    assert not prediction.not_a_digit
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert prediction.confidence == max(prediction.probabilities)
    assert prediction.probabilities.index(prediction.confidence) == prediction.digit


def test_not_a_digit_is_the_answer_only_when_the_model_is_fairly_sure_of_it() -> None:
    # A bold 3 that also looks like a blot: the model's probability leans to "not a digit",
    # but not strongly enough to refuse a person's digit.
    leaning = np.array([0, 0, 0, 0.35, 0, 0, 0, 0, 0, 0.05, 0.6])
    # A dot: nothing but "not a digit".
    dot = np.array([0.01] * 10 + [0.9])
    assert answers(np.stack([leaning, dot])).tolist() == [3, NOT_A_DIGIT]
    assert Scores.of(leaning).digit == 3 and not Scores.of(leaning).not_a_digit
    assert Scores.of(leaning).confidence == pytest.approx(0.35)  # unsure, as it should be
    assert Scores.of(dot).not_a_digit and Scores.of(dot).confidence == pytest.approx(0.9)


def test_batch_and_single_predictions_agree(classifier: Classifier, mnist: Mnist) -> None:
    images = to_float(mnist.test_images[:16])
    batch = classifier.probabilities(images)
    singles = np.stack([classifier.probabilities(image[np.newaxis])[0] for image in images])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


@pytest.mark.parametrize(
    ("polarity", "scale"),
    [("white on black", 1), ("black on white", 1), ("black on white", 10)],
)
def test_mnist_test_images_sent_as_png_are_recognised(
    classifier: Classifier, mnist: Mnist, polarity: str, scale: int
) -> None:
    """Serving path (PNG -> pipeline -> model) gets what training's arrays get."""
    images, labels = mnist.test_images[SAMPLE], mnist.test_labels[SAMPLE]
    if polarity == "black on white":
        images = 255 - images
    through_pipeline = np.stack([to_mnist(png(image, scale)) for image in images])
    predicted = answers(classifier.probabilities(through_pipeline))
    as_arrays = answers(classifier.probabilities(to_float(mnist.test_images[SAMPLE])))
    wrong = np.flatnonzero(predicted != labels)
    assert len(wrong) <= 3, f"{len(wrong)} of {len(SAMPLE)} wrong: MNIST indices {SAMPLE[wrong]}"
    # The pipeline may not lose what the model knows: agreement with the array path.
    assert np.mean(predicted == as_arrays) >= 0.99


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="python -m flaskandmnist train"):
        Classifier.load(tmp_path / "absent.weights.h5")


@pytest.mark.slow  # loads TensorFlow, which serving never does
def test_the_shipped_litert_model_is_the_export_of_the_shipped_weights(
    classifier: Classifier, mnist: Mnist
) -> None:
    """What serving runs (the .tflite) is what `python -m flaskandmnist export` makes of the
    shipped Keras weights, not a stale copy: the same outputs on a sample of MNIST."""
    from flaskandmnist.model import build_model, to_litert

    keras_model = build_model()
    keras_model.load_weights(DEFAULT_MODEL_PATH)
    exported = Classifier(to_litert(keras_model, classifier.card["temperature"]), classifier.card)
    images = to_float(mnist.test_images[SAMPLE])
    np.testing.assert_allclose(
        classifier.probabilities(images), exported.probabilities(images), atol=1e-6
    )


def test_a_litert_model_the_card_does_not_name_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "m.weights.h5"
    card_path(weights).write_text(card_path(DEFAULT_MODEL_PATH).read_text())
    litert_path(weights).write_bytes(litert_path(DEFAULT_MODEL_PATH).read_bytes() + b"x")
    with pytest.raises(ModelNotFoundError, match="export it again"):
        Classifier.load(weights)


def test_serving_and_the_cli_predict_load_neither_tensorflow_nor_keras(
    mnist: Mnist, tmp_path: Path
) -> None:
    """The web app and ``python -m flaskandmnist predict`` run on LiteRT alone: neither a
    worker nor the command pays for TensorFlow's memory and import time."""
    seven = tmp_path / "seven.png"
    seven.write_bytes(png(255 - mnist.test_images[0]))
    # Cassandra on a port nothing listens on: the app starts anyway (its outbox queues).
    settings = (
        "config.Settings(cassandra=config.CassandraSettings(port=1, connect_timeout_s=1.0), "
        f"outbox=config.OutboxSettings(directory=Path({str(tmp_path)!r})), "
        "web=config.WebSettings(secret_key='test'))"
    )
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from flaskandmnist.__main__ import main\n"
        "from flaskandmnist import config\n"
        "from flaskandmnist.web import close_app, create_app\n"
        f"app = create_app({settings})\n"
        "assert app.test_client().get('/healthz').status_code == 200\n"
        "close_app(app)\n"
        f"assert main(['predict', {str(seven)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    predicted, loaded = result.stdout.splitlines()
    assert predicted.startswith(f"{seven}: 7 (confidence ")
    assert loaded == "[]"
