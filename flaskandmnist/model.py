"""The mnist_deep CNN and fast in-process inference with it.

Topology as in TensorFlow's ``mnist_deep`` tutorial: 5x5 conv (32) -> 2x2 max-pool ->
5x5 conv (64) -> 2x2 max-pool -> dense 1024 + dropout -> 10 logits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def build_model(dropout: float = 0.5) -> keras.Model:
    """Return a fresh, uncompiled mnist_deep model taking (batch, 28, 28) floats in [0, 1]."""
    layers = keras.layers
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Reshape((*IMAGE_SHAPE, 1))(inputs)
    x = layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="mnist_deep")


def card_path(model_path: Path) -> Path:
    """The model card (JSON) that sits beside a weights file: ``x.weights.h5`` -> ``x.json``."""
    name = model_path.name.removesuffix(".h5").removesuffix(".weights")
    return model_path.with_name(f"{name}.json")


class ModelNotFoundError(FileNotFoundError):
    """The weights file or its model card is missing."""


@dataclass(frozen=True)
class Prediction:
    """What the classifier says about one image."""

    digit: int
    confidence: float
    probabilities: tuple[float, ...]  # ten, summing to 1


class Classifier:
    """A trained model, loaded once, answering many predictions quickly.

    ``model.predict`` builds a data pipeline on every call (milliseconds of overhead per
    request); a ``tf.function`` with a fixed input signature is traced once and then runs
    the graph directly for any batch size.
    """

    def __init__(self, model: keras.Model, card: dict[str, Any]) -> None:
        self.model = model
        self.card = card
        self.version: str = card.get("model_version", "unknown")
        self._probabilities = tf.function(
            lambda images: tf.nn.softmax(model(images, training=False)),
            input_signature=[tf.TensorSpec((None, *IMAGE_SHAPE), tf.float32)],
        )

    @classmethod
    def load(cls, model_path: Path | str) -> Classifier:
        """Load weights and model card; raise :class:`ModelNotFoundError` if absent."""
        model_path = Path(model_path)
        card_file = card_path(model_path)
        for path in (model_path, card_file):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{path} not found: train a model with `python -m flaskandmnist train` "
                    "or set MODEL_PATH to an existing weights file"
                )
        model = build_model()
        model.load_weights(model_path)
        return cls(model, json.loads(card_file.read_text()))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10), for images of shape (n, 28, 28) in [0, 1]."""
        batch = np.asarray(images, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        return self._probabilities(batch).numpy()

    def predict(self, images: np.ndarray) -> list[Prediction]:
        """Digit, confidence and all ten probabilities for each of ``images``."""
        return [
            Prediction(int(p.argmax()), float(p.max()), tuple(float(v) for v in p))
            for p in self.probabilities(images)
        ]

    def predict_one(self, image: np.ndarray) -> Prediction:
        """Prediction for a single (28, 28) image."""
        return self.predict(image[np.newaxis])[0]
